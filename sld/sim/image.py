"""The simulator's manifest: what a built image holds and the verdict it should get, beside the image."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, BinaryIO

from sld.platform.files import replace_file


def write_manifest(path: str | os.PathLike[str], manifest: Mapping[str, Any]) -> None:
    """``manifest`` as indented JSON at ``path`` (replaced, never written through a planted link)."""
    text = (json.dumps(manifest, indent=2) + "\n").encode()

    def fill(f: BinaryIO) -> None:
        f.write(text)

    replace_file(path, fill)
