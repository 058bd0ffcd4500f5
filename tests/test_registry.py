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


def test_batch_engines_are_not_in_the_chat_or_prompt_lab_pickers(env_dirs):
    """azureml-job (kind batch) is submitted, not called: the Chat tab's and the Prompt Lab's engine pickers
    leave it out (at build and on refresh), while `engines list` and the registry still know it."""
    from engines.registry import engine_status, is_local, local_engines
    from reports.store import Store
    from webapp.app import build_app
    from webapp.config import load_config
    from webapp.library import Library
    from webapp.state import AppState
    from webapp.tabs import prompt_lab as PL

    batch = {n for n, c in all_engines().items() if set(c.kinds) == {"batch"}}
    assert "azureml-job" in batch
    assert not is_local({"batch"}) and is_local({"chat"}) and is_local({"detector"}) and is_local({"chat", "batch"})
    assert is_local(())  # a broken plugin (kinds unknown) stays listed with its reason
    assert batch.isdisjoint(local_engines()) and {"baseline", "transformers", "videollama2"} <= set(local_engines())
    assert batch <= {r["name"] for r in engine_status()}
    local_rows = {r["name"] for r in engine_status(local_only=True)}
    assert batch.isdisjoint(local_rows) and "baseline" in local_rows
    choices, _ = PL.engine_choices("baseline")
    assert batch.isdisjoint({v for _, v in choices}) and "baseline" in {v for _, v in choices}

    cfg = load_config()
    st = Store(cfg.db_path)
    try:
        demo = build_app(AppState(config=cfg, store=st, library=Library(cfg, st)))
        pickers = {c["props"].get("elem_id"): c["props"] for c in demo.config["components"]
                   if c["props"].get("elem_id") in ("chat-engine", "lab-engine")}
        assert set(pickers) == {"chat-engine", "lab-engine"}
        for elem, props in pickers.items():
            values = {ch[1] for ch in props["choices"]}
            assert "baseline" in values and batch.isdisjoint(values), (elem, values)
    finally:
        st.close()
