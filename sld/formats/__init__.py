"""Binary formats of TXT and Secure Launch, declared once with construct, used to parse and to build."""
