"""sld.tss's version guard: a tpm2-pytss release sld is not tested with is refused, naming it, before its
binding is loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _site(tmp_path: Path, dist: str) -> Path:
    package = tmp_path / "tpm2_pytss"
    package.mkdir()
    (package / "__init__.py").write_text("raise SystemExit('the tpm2_pytss package was imported')\n")
    (package / "_libtpm2_pytss.py").write_text("raise SystemExit('the binding was loaded')\n")
    (tmp_path / dist).mkdir()
    return tmp_path


def _open(site: Path) -> subprocess.CompletedProcess[str]:
    code = "from sld.tpm import Tpm\ntry:\n    Tpm('swtpm:port=1')\nexcept Exception as e:\n    print(e.kind, e)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=f"{site}:{ROOT}"))


def test_an_untested_release_is_refused_by_name(tmp_path: Path) -> None:
    run = _open(_site(tmp_path, "tpm2_pytss-2.3.0.dist-info"))
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("unavailable TPM unavailable: tpm2-pytss 2.3.0 in ")
    assert "tested with its binding in releases 1.2.0, 3.0.0 only" in run.stdout


def test_a_release_without_metadata_is_refused(tmp_path: Path) -> None:
    run = _open(_site(tmp_path, "unrelated.dist-info"))
    assert "tpm2-pytss (version unknown)" in run.stdout, run.stderr


def test_a_supported_release_is_named_by_its_dist_info(tmp_path: Path) -> None:
    from sld.tss import installed_version

    site = _site(tmp_path, "tpm2_pytss-1.2.0.dist-info")
    assert installed_version(str(site / "tpm2_pytss")) == "1.2.0"


def test_the_venvs_binding_maps_no_fapi() -> None:
    """scripts/setup.sh compiles tpm2-pytss's binding without FAPI: a process that loads it (as every sld
    command and the daemon do) maps neither libtss2-fapi nor the libcurl FAPI would bring (4.4 MiB of RSS)."""
    code = ("import sld.tss; _, lib = sld.tss.binding(); maps = open('/proc/self/maps').read(); "
            "print(hasattr(lib, 'Fapi_Initialize'), 'libtss2-fapi' in maps, 'libcurl' in maps)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert run.stdout.split() == ["False", "False", "False"], run.stderr
