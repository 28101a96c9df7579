"""Writing a platform image: a sparse file where file offset == physical address.

Only the pages that hold something take disk space (a few KiB), yet /dev/mem readers such as
txt-stat, bind-mounted onto it, and :class:`sld.platform.memory.ImageMemory` find every structure at
its physical address: an image is read exactly as /dev/mem is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import BinaryIO

from sld.errors import FormatError
from sld.platform.files import replace_file

IMAGE_END = 0xFED40000
"""Just past the TXT public space, so both config spaces lie inside the image."""


def write_image(path: str | os.PathLike[str], regions: Mapping[int, bytes]) -> None:
    """Create (or replace, never write through) the sparse image with ``regions`` (address -> bytes) in it."""
    spans = sorted((addr, addr + len(data)) for addr, data in regions.items())
    for (a0, a1), (b0, _) in zip(spans, spans[1:], strict=False):
        if b0 < a1:
            raise FormatError("platform image", f"regions overlap (0x{a0:x}..0x{a1:x})", offset=b0)

    def fill(f: BinaryIO) -> None:
        f.truncate(max(IMAGE_END, spans[-1][1] if spans else 0))
        for addr, data in sorted(regions.items()):
            f.seek(addr)
            f.write(data)

    replace_file(path, fill)
