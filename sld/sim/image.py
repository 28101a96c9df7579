"""Writing a platform image: a sparse file where file offset == physical address.

Only the pages the scenario fills take disk space (a few KiB), yet /dev/mem readers such as
txt-stat, bind-mounted onto it, find every structure at its physical address.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sld.errors import SourceError

IMAGE_END = 0xFED40000
"""Just past the TXT public space, so both config spaces lie inside the image."""


def write_image(path: str | os.PathLike[str], regions: Mapping[int, bytes]) -> None:
    """Create (or replace) the sparse image with ``regions`` (physical address -> bytes) written in."""
    spans = sorted((addr, addr + len(data)) for addr, data in regions.items())
    for (a0, a1), (b0, _) in zip(spans, spans[1:], strict=False):
        if b0 < a1:
            raise ValueError(f"simulator regions overlap at 0x{b0:x} (0x{a0:x}..0x{a1:x})")
    tmp = Path(f"{path}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.truncate(IMAGE_END)
            for addr, data in sorted(regions.items()):
                f.seek(addr)
                f.write(data)
        os.replace(tmp, path)
    except OSError as err:
        raise SourceError(f"cannot write image: {err.strerror}", source=str(path)) from None


def write_manifest(path: str | os.PathLike[str], manifest: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(manifest, indent=2) + "\n")
