"""The evidence file ``sld attest`` writes (docs/evidence.md, schema 1), read into typed values.

Evidence comes from the host being judged, so every key is checked for presence and type, every
base64 and hex string decoded strictly, and every TPM structure read within its bytes; a defect is
a FormatError naming the key (``quotes[1].attest``) and, inside a TPM structure, the field. What
this module returns is still unauthenticated: :mod:`sld.evidence.check` decides what holds.
"""

from __future__ import annotations

import binascii
import json

from sld.errors import ConfigError, FormatError
from sld.formats.names import DIGEST_SIZE
from sld.formats.quote import Attest, Public, Signature, read_attest, read_public, read_signature

TYPE_CHECKING = False  # typing costs a cold verification more than reading the evidence
if TYPE_CHECKING:
    from typing import Any

SCHEMA = 1
KIND = "evidence"


def _bad(key: str, message: str) -> FormatError:
    return FormatError("evidence", message, field=key)


JSON_NAMES = {int: "number", str: "string", dict: "object", list: "array", type(None): "null"}


def _get(obj: dict[str, Any], name: str, kind: Any, key: str) -> Any:
    """``obj[name]`` of Python type ``kind`` (a type or a union); JSON's true/false is never a number."""
    where = f"{key}.{name}" if key else name
    if name not in obj:
        raise _bad(where, "missing")
    value = obj[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        wanted = " or ".join(JSON_NAMES[t] for t in getattr(kind, "__args__", (kind,)))
        raise _bad(where, f"expected a JSON {wanted}, got {JSON_NAMES.get(type(value), type(value).__name__)}")
    return value


def _b64(value: str, key: str) -> bytes:
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError) as err:
        raise _bad(key, f"not base64: {err}") from None


def _hex(value: str, key: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise _bad(key, "not hex") from None


def _tpm(reader: Any, data: bytes, key: str) -> Any:
    try:
        return reader(data)
    except FormatError as err:
        raise _bad(key, str(err)) from None


class Quote:
    """One TPM2_Quote of one bank: the attest and signature as the TPM returned them, and the PCR values."""

    __slots__ = ("bank", "attest_bytes", "attest", "signature", "pcrs")

    def __init__(self, obj: dict[str, Any], key: str) -> None:
        self.bank: str = _get(obj, "bank", str, key)
        if self.bank not in DIGEST_SIZE:
            raise _bad(f"{key}.bank", f"unknown bank {self.bank!r}")
        self.attest_bytes = _b64(_get(obj, "attest", str, key), f"{key}.attest")
        self.attest: Attest = _tpm(read_attest, self.attest_bytes, f"{key}.attest")
        self.signature: Signature = _tpm(read_signature, _b64(_get(obj, "signature", str, key), f"{key}.signature"),
                                         f"{key}.signature")
        self.pcrs: dict[int, bytes] = {}
        for index, value in _get(obj, "pcrs", dict, key).items():
            where = f"{key}.pcrs.{index}"
            if not index.isdigit() or not 0 <= int(index) < 24 or not isinstance(value, str):
                raise _bad(where, "expected a PCR index 0..23 and a hex value")
            self.pcrs[int(index)] = digest = _hex(value, where)
            if len(digest) != DIGEST_SIZE[self.bank]:
                raise _bad(where, f"{len(digest)} bytes, a {self.bank} PCR holds {DIGEST_SIZE[self.bank]}")


class Evidence:
    """A parsed evidence object; ``platform`` and ``verdict`` are kept as the host wrote them (advisory)."""

    __slots__ = ("nonce", "ak_public", "ak_name", "quotes", "log", "banks", "platform", "verdict")
    log: bytes | None

    def __init__(self, obj: dict[str, Any]) -> None:
        if _get(obj, "schema", int, "") != SCHEMA or _get(obj, "kind", str, "") != KIND:
            raise _bad("schema", f"expected schema {SCHEMA} and kind {KIND!r}, got {obj['schema']!r}/{obj['kind']!r}")
        self.nonce = _hex(_get(obj, "nonce", str, ""), "nonce")
        ak = _get(obj, "ak", dict, "")
        self.ak_public: Public = _tpm(read_public, _b64(_get(ak, "public", str, "ak"), "ak.public"), "ak.public")
        self.ak_name = _hex(_get(ak, "name", str, "ak"), "ak.name")
        quotes = _get(obj, "quotes", list, "")
        if not quotes:
            raise _bad("quotes", "no quote")
        self.quotes = tuple(Quote(q if isinstance(q, dict) else {}, f"quotes[{i}]") for i, q in enumerate(quotes))
        log = _get(obj, "drtm_log", str | None, "")  # null: the host could not read its log
        self.log = None if log is None else _b64(log, "drtm_log")
        banks = obj.get("banks", [])
        if not isinstance(banks, list) or not all(isinstance(b, str) for b in banks):
            raise _bad("banks", "expected a list of bank names")
        self.banks: tuple[str, ...] = tuple(banks)
        self.platform = obj.get("platform")
        self.verdict = obj.get("verdict")


def parse_evidence(text: str | bytes) -> Evidence:
    """Evidence from the JSON text of an evidence file."""
    try:
        obj = json.loads(text)
    except (UnicodeDecodeError, ValueError) as err:
        raise _bad("", f"not JSON: {err}") from None
    if not isinstance(obj, dict):
        raise _bad("", "not a JSON object")
    return Evidence(obj)


def load_evidence(path: str, option: str = "--evidence") -> Evidence:
    """Evidence from a file; a file that cannot be read is a usage error naming the option (exit 2)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise ConfigError(f"cannot read evidence: {err.strerror}", key=option, file=path) from None
    return parse_evidence(data)
