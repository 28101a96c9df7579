"""bcrypt password hashes for the metrics listener's basic auth, checked by the system's libxcrypt.

Prometheus exporters (exporter-toolkit's web config) keep scraper passwords as bcrypt hashes; sld
takes the same hashes. Verification calls libxcrypt's ``crypt_rn`` (Debian's ``libcrypt1``, part of
every Debian system; it implements ``$2b$``/``$2y$``/``$2a$``) through ctypes, so no runtime
dependency is added, and it keeps working on Pythons without the stdlib ``crypt`` module (removed in
3.13). ``crypt_rn`` writes into a caller's buffer, so concurrent scrapes do not share state.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hmac
from typing import Any

from sld.errors import ConfigError

CRYPT_DATA_SIZE = 32768  # sizeof(struct crypt_data) in libxcrypt's crypt.h


@functools.cache
def _crypt_rn() -> Any:
    name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
    try:
        function = ctypes.CDLL(name).crypt_rn
    except (OSError, AttributeError) as err:
        raise ConfigError(f"bcrypt needs libxcrypt's crypt_rn (Debian libcrypt1): {err}",
                          key="metrics.basic_auth_users") from None
    function.restype = ctypes.c_char_p
    function.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    return function


def require() -> None:
    """Fail at start-up, not at the first scrape, when this system cannot check bcrypt hashes."""
    _crypt_rn()


def check(password: bytes, hashed: str) -> bool:
    """Whether ``password`` hashes to ``hashed`` (libxcrypt re-derives it with the hash's own salt and cost)."""
    if b"\0" in password:
        return False
    data = ctypes.create_string_buffer(CRYPT_DATA_SIZE)
    derived = _crypt_rn()(password, hashed.encode(), data, CRYPT_DATA_SIZE)
    return derived is not None and hmac.compare_digest(derived, hashed.encode())
