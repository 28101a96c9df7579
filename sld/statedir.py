"""The daemon's state directory (default /var/lib/sld): small JSON records that outlive a boot.

A record is read and written without following symlinks (``O_NOFOLLOW`` on the file, ``lstat`` on
the directory), and replaced atomically (a new file in the same directory, fsync, ``rename``), so a
crash leaves the old record or the new one, and nobody can make sld write through a link it planted.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from sld.errors import ConfigError


def _directory(path: str, *, create: bool) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not create:
            return
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as err:
        raise ConfigError(f"state directory: {err.strerror}", key="state_dir", file=path) from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError("state directory is not a directory (a symlink is refused)", key="state_dir", file=path)


def read_record(directory: str, name: str) -> dict[str, Any] | None:
    """The record ``name`` (None when there is none yet); a link or a bad record is a ConfigError."""
    _directory(directory, create=False)
    path = os.path.join(directory, f"{name}.json")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ConfigError(f"cannot read state record: {err.strerror}", key="state_dir", file=path) from None
    with os.fdopen(fd, "rb") as f:
        try:
            record = json.loads(f.read(1 << 16))
        except (ValueError, UnicodeDecodeError) as err:
            raise ConfigError(f"state record is not JSON: {err}", key="state_dir", file=path) from None
    if not isinstance(record, dict):
        raise ConfigError("state record is not a JSON object", key="state_dir", file=path)
    return record


def write_record(directory: str, name: str, record: dict[str, Any]) -> None:
    """Replace the record ``name`` atomically (never through a symlink)."""
    _directory(directory, create=True)
    path = os.path.join(directory, f"{name}.json")
    tmp = os.path.join(directory, f".{name}.json.{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(record, indent=2, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # rename replaces a symlink itself, never what it points at
    except OSError as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ConfigError(f"cannot write state record: {err.strerror}", key="state_dir", file=path) from None
