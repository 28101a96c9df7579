"""The typed error tree. Every failure sld reports is one of these, never a bare traceback.

Each error names what failed and where (structure, field, physical address or file offset), so an
operator reading one line of a journal knows which byte of which table to look at.
"""

from __future__ import annotations

from sld.vocab import TpmErrorKind


class SldError(Exception):
    """Root of sld's errors; ``exit_code`` is what the CLI returns for it (see ``sld verify --help``)."""

    exit_code = 1


class SourceError(SldError):
    """A byte source (/dev/mem, image, securityfs, capture, log file) cannot be opened or read."""

    exit_code = 3

    def __init__(self, message: str, *, source: str = "", address: int | None = None) -> None:
        self.source = source
        self.address = address
        where = f" at 0x{address:x}" if address is not None else ""
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{message}{where}")


class FormatError(SldError):
    """Bytes that do not form the structure they should: names the structure, field and offset."""

    exit_code = 1

    def __init__(
        self, structure: str, message: str, *, field: str | None = None, offset: int | None = None
    ) -> None:
        self.structure = structure
        self.field = field
        self.offset = offset
        what = f"{structure}.{field}" if field else structure
        where = f" at 0x{offset:x}" if offset is not None else ""
        super().__init__(f"{what}{where}: {message}")


class TpmError(SldError):
    """A TPM command or transport failure, classified once into ``kind`` so callers never match text."""

    exit_code = 4

    def __init__(self, kind: TpmErrorKind, message: str, *, rc: int | None = None) -> None:
        self.kind = kind
        self.rc = rc
        code = f" (rc 0x{rc:x})" if rc is not None else ""
        super().__init__(f"TPM {kind}: {message}{code}")


class ConfigError(SldError):
    """A configuration file, key or value that cannot be used; names the file and the key."""

    exit_code = 2

    def __init__(self, message: str, *, key: str | None = None, file: str | None = None) -> None:
        self.key = key
        self.file = file
        where = ":".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class LockError(SldError):
    """The extend lock (sld.lock) cannot be taken: nothing was extended, and nothing was verified false."""

    exit_code = 5
