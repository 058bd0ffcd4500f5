"""Engines are found through the ghostprobe.engines entry-point group; the Spaces fallback list matches it."""

from __future__ import annotations

import tomllib
from pathlib import Path

from engines.registry import BUILTIN, all_engines, entry_points

ROOT = Path(__file__).resolve().parents[1]


def test_builtin_list_is_the_pyproject_entry_points():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["ghostprobe.engines"]
    assert declared == BUILTIN  # a Space (project not pip-installed) sees the same engines
    assert set(BUILTIN) <= set(entry_points())


def test_every_builtin_engine_loads_with_its_name_and_kinds():
    engines = all_engines()
    for name in BUILTIN:
        cls = engines[name]
        assert cls.name == name and cls.kinds and set(cls.kinds) <= {"chat", "detector", "batch"}
