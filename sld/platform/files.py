"""Reading and writing the files sld is pointed at, without following what an attacker planted.

Reads: only a regular file, opened without following a final symlink and never blocking on a FIFO,
and never more than a cap (a securityfs ``eventlog`` linked to /dev/zero, a FIFO or a huge file is a
SourceError, not a MemoryError or a hang). Securityfs files report size 0, so the cap is enforced on
what is read, not on ``st_size``.

Writes: into a fresh file made with O_EXCL in the target's own directory (``mkstemp``), then
renamed over the target, so a planted ``PATH.tmp`` or a symlink at ``PATH`` is replaced, never
written through.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

from sld.errors import SourceError

TYPE_CHECKING = False  # typing costs sld inspect log --file, which opens its file here, a cold-start import
if TYPE_CHECKING:
    from typing import BinaryIO

_KINDS = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


def open_regular(path: str | os.PathLike[str], source: str, *, follow: bool = False) -> int:
    """An O_RDONLY descriptor of ``path`` if it is a regular file (and, unless ``follow``, not a symlink)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        why = "is a symbolic link, which is not followed" if err.errno == errno.ELOOP else \
            f"cannot be opened: {err.strerror}"
        raise SourceError(f"{os.fspath(path)} {why}", source=source) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise SourceError(f"{os.fspath(path)} is {_KINDS.get(stat.S_IFMT(mode), 'not a regular file')}, "
                          "not a regular file", source=source)
    return fd


def read_bounded(path: str | os.PathLike[str], limit: int, source: str, *, follow: bool = False) -> bytes:
    """The whole regular file at ``path``, refused if it holds more than ``limit`` bytes."""
    fd = open_regular(path, source, follow=follow)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    except OSError as err:
        raise SourceError(f"cannot read {os.fspath(path)}: {err.strerror}", source=source) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise SourceError(f"{os.fspath(path)} holds more than {limit} bytes, more than any such file can",
                          source=source)
    return data


def replace_file(path: str | os.PathLike[str], write: Callable[[BinaryIO], None], mode: int = 0o644) -> None:
    """Create ``path`` afresh: ``write`` fills a new O_EXCL file beside it, which is then renamed over it."""
    import tempfile  # here: reading a platform, the only thing a verification does with files, never needs it

    target = os.fspath(path)
    if os.path.isdir(target) and not os.path.islink(target):
        raise SourceError("is a directory; give a file name", source=target)
    directory = os.path.dirname(os.path.abspath(target))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", dir=directory)
    except OSError as err:
        raise SourceError(f"cannot create a file in {directory}: {err.strerror}", source=target) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, target)
    except OSError as err:
        os.unlink(tmp)
        raise SourceError(f"cannot write: {err.strerror}", source=target) from None
    except BaseException:
        os.unlink(tmp)
        raise
