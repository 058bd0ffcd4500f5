"""`ghostprobe runs rename|hide|unhide|delete` and `report --lang` through the real CLI on a real DuckDB file."""

from __future__ import annotations

import json

import pytest

from engines.types import Verdict
from reports.runs import add_prediction, create_run, finish_run, get_run, list_runs
from reports.store import Store
from webapp.cli import main


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTPROBE_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "runs.duckdb"
    s = Store(path)
    with s.write() as cur:
        cur.execute("INSERT INTO label_sets (name, source) VALUES ('dev4', 'test')")
        for i in range(4):
            cur.execute("INSERT INTO labels (label_set, video_id, ghost_probing, kind) VALUES ('dev4', ?, ?, ?)",
                        [f"v{i}.mp4", i % 2 == 0, "ghost_probing" if i % 2 == 0 else "none"])
    ids = []
    for name in ("first", "second"):
        rid = create_run(s, engine="baseline", label_set="dev4", name=name, selection=[f"v{i}.mp4" for i in range(4)])
        for i in range(4 if name == "first" else 3):
            add_prediction(s, rid, f"v{i}.mp4", None, Verdict(ghost_probing=i % 2 == 0, status="ok", raw="{}"),
                           {"latency_s": 0.5})
        finish_run(s, rid)
        ids.append(rid)
    s.close()
    return path, ids


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_rename_hide_unhide_delete(db, capsys):
    path, (a, b) = db
    code, out, _ = _run(capsys, "--db", str(path), "runs", "rename", "first", "baseline-v1", "--json")
    assert code == 0 and json.loads(out) == {"run_id": a, "name": "baseline-v1"}
    code, _, err = _run(capsys, "--db", str(path), "runs", "rename", a, "second")
    assert code == 2 and "already exists" in err and "Traceback" not in err  # names stay unique
    code, out, _ = _run(capsys, "--db", str(path), "runs", "hide", "baseline-v1")
    assert code == 0 and "hidden" in out
    s = Store(path)
    try:
        assert [r["run_id"] for r in list_runs(s)] == [b]
        assert {r["run_id"] for r in list_runs(s, include_hidden=True)} == {a, b}
    finally:
        s.close()
    assert _run(capsys, "--db", str(path), "runs", "unhide", a)[0] == 0
    code, _, err = _run(capsys, "--db", str(path), "runs", "delete", b)
    assert code == 2 and "--yes" in err  # nothing deleted without it
    code, out, _ = _run(capsys, "--db", str(path), "runs", "delete", b, "--yes", "--json")
    assert code == 0 and json.loads(out)["run_id"] == b
    s = Store(path)
    try:
        assert [r["run_id"] for r in list_runs(s, include_hidden=True)] == [a]
        assert get_run(s, a)["name"] == "baseline-v1" and len(s.query("SELECT * FROM predictions WHERE run_id = ?", [a])) == 4
    finally:
        s.close()
    code, _, err = _run(capsys, "--db", str(path), "runs", "delete", "no-such-run", "--yes")
    assert code == 2 and err.count("\n") == 1


def test_report_language_and_coverage(db, capsys, tmp_path):
    path, (a, b) = db
    for lang, needle in (("en", "more labelled videos needed"), ("zh", "需要更多标注视频")):
        out = tmp_path / f"r-{lang}.html"
        assert _run(capsys, "--db", str(path), "report", "--out", str(out), "--lang", lang)[0] == 0
        text = out.read_text(encoding="utf-8")
        assert needle in text and str(path) not in text
    en = (tmp_path / "r-en.html").read_text(encoding="utf-8")
    assert "3/4 (1 without an answer)" in en and "<td>partial</td>" in en  # the second run missed a video
    with pytest.raises(SystemExit) as ex:  # argparse refuses it: one sentence, exit 2
        main(["--db", str(path), "report", "--out", str(tmp_path / "x.html"), "--lang", "fr"])
    assert ex.value.code == 2 and "invalid choice" in capsys.readouterr().err.lower()
