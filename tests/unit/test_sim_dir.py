"""The simulator's default directory is the user's, never one machine-wide path shared by everyone (issue 16)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sld.commands.sim import default_sim_dir


def test_without_a_runtime_directory_the_default_names_the_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    path = default_sim_dir()
    assert path.name == f"sld-sim-{os.getuid()}" and path != Path("/run/sld-sim")


def test_a_runtime_directory_that_does_not_exist_is_not_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    assert default_sim_dir().name == f"sld-sim-{os.getuid()}"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_sim_dir() == tmp_path / "sld-sim"
