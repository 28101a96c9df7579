"""sld: the Secure Launch daemon, verifying Intel TXT dynamic launches (Linux Secure Launch)."""

__version__ = "0.1.0"
