"""Runs store: ids, lookup by id or name, exactly-once predictions, reviews, response cache."""

from __future__ import annotations

import re

import pytest

from engines.base import CallRecord
from engines.types import Verdict
from reports import runs as R


def _labels(store, name, items):
    with store.write() as cur:
        cur.execute("INSERT INTO label_sets (name, source) VALUES (?, 'test')", [name])
        for vid, gp in items:
            cur.execute("INSERT INTO labels (label_set, video_id, ghost_probing, kind) VALUES (?, ?, ?, ?)",
                        [name, vid, gp, "ghost_probing" if gp else "none"])


def test_run_id_is_short_and_sortable():
    from datetime import datetime

    a = R.new_run_id(datetime(2026, 11, 21, 18, 30, 0))
    b = R.new_run_id(datetime(2026, 11, 21, 18, 30, 1))
    assert re.fullmatch(r"r20261121-183000-[0-9a-f]{4}", a)
    assert a < b


def test_create_get_list_finish(store):
    rid = R.create_run(store, engine="baseline", model=None, revision="v1", prompt=("ghost_probing", "3", "abc"),
                       options={"temperature": 0.0}, sampling={"num_frames": 16}, label_set="dev",
                       selection=["a.avi", "b.avi"], location="local-cpu", instances=1, name="first")
    run = R.get_run(store, "first")
    assert run["run_id"] == rid and run["status"] == "running"
    assert run["prompt_id"] == "ghost_probing" and run["prompt_version"] == "3" and run["prompt_hash"] == "abc"
    assert run["selection"] == ["a.avi", "b.avi"] and run["options"] == {"temperature": 0.0}
    assert R.get_run(store, rid)["name"] == "first"
    # finished with planned videos unanswered: partial, never "done"
    assert R.finish_run(store, rid, "done") == "partial"
    run = R.get_run(store, rid)
    assert run["status"] == "partial" and run["finished_at"] is not None
    assert (run["planned"], run["scored"], run["errored"], run["not_predicted"]) == (2, 0, 0, 2)
    for vid in ("a.avi", "b.avi"):
        R.add_prediction(store, rid, vid, None, Verdict(ghost_probing=False, status="ok"))
    assert R.finish_run(store, rid, "done") == "done"
    run = R.get_run(store, rid)
    assert run["status"] == "done" and run["coverage"] == "2/2"
    listed = R.list_runs(store, engine="baseline")
    assert [r["run_id"] for r in listed] == [rid] and listed[0]["selected"] == 2
    assert R.list_runs(store, engine="openai") == []


def test_unknown_and_ambiguous_runs_are_one_sentence(store):
    with pytest.raises(R.RunError, match=r"^No run has the id or name 'nope'.*\.$"):
        R.get_run(store, "nope")
    R.create_run(store, engine="baseline", name="dup")
    with pytest.raises(R.RunError, match="already exists"):
        R.create_run(store, engine="baseline", name="dup")
    # two runs whose names collide can only exist if written around create_run: still no silent pick
    with store.write() as cur:
        cur.execute("INSERT INTO runs (run_id, name, engine, status) VALUES ('rX1', 'twin', 'baseline', 'done'), "
                    "('rX2', 'twin', 'baseline', 'done')")
    with pytest.raises(R.RunError, match=r"matches 2 runs"):
        R.get_run(store, "twin")


def test_predictions_exactly_once_and_joined_with_labels(store):
    _labels(store, "dev", [("a.avi", True), ("b.avi", False)])
    rid = R.create_run(store, engine="baseline", label_set="dev", selection=["a.avi", "b.avi", "c.avi"])
    call = CallRecord(engine="baseline", latency_s=1.5, prompt_tokens=10, completion_tokens=2)
    R.add_prediction(store, rid, "a.avi", "sha-a", Verdict(ghost_probing=False, status="ok"), call)
    R.add_prediction(store, rid, "a.avi", "sha-a", Verdict(ghost_probing=True, confidence=0.9, status="ok"), call)
    R.add_prediction(store, rid, "b.avi", "sha-b", Verdict(ghost_probing=False, status="unparsed", raw="嗯"), call)
    R.add_prediction(store, rid, "c.avi", None, Verdict.error("Video is corrupt."), None)
    rows = {r["video_id"]: r for r in R.predictions(store, rid)}
    assert len(rows) == 3
    assert rows["a.avi"]["ghost_probing"] is True and rows["a.avi"]["correct"] is True
    assert rows["a.avi"]["latency_s"] == 1.5 and rows["a.avi"]["prompt_tokens"] == 10
    # an unparsed answer is stored as NULL, never as "no", and is not correct
    assert rows["b.avi"]["ghost_probing"] is None and rows["b.avi"]["correct"] is False
    assert rows["c.avi"]["status"] == "error" and rows["c.avi"]["reason"] == "Video is corrupt."
    assert rows["c.avi"]["label_ghost_probing"] is None and rows["c.avi"]["correct"] is None
    assert R.done_video_ids(store, rid) == {"a.avi", "b.avi", "c.avi"}
    assert R.done_video_ids(store, rid, include_errors=False) == {"a.avi", "b.avi"}


def test_reviews(store):
    rid = R.create_run(store, engine="baseline")
    R.add_prediction(store, rid, "a.avi", None, Verdict(ghost_probing=True, status="ok"))
    R.add_review(store, rid, "a.avi", "label-wrong", "the pedestrian was visible all along")
    assert R.reviews(store, rid)[0]["mark"] == "label-wrong"
    with pytest.raises(R.RunError, match="mark"):
        R.add_review(store, rid, "a.avi", "meh")
    with pytest.raises(R.RunError, match="no prediction"):
        R.add_review(store, rid, "zzz.avi", "agree")


def test_coverage_counts_missing_videos_and_marks_partial(store):
    rid = R.create_run(store, engine="baseline", label_set="dev", selection=["a.avi"],
                       missing=["b.avi", "c.avi"])
    R.add_prediction(store, rid, "a.avi", None, Verdict(ghost_probing=True, status="ok"))
    assert R.finish_run(store, rid, "done") == "partial"
    run = R.get_run(store, rid)
    assert (run["planned"], run["scored"], run["missing"], run["coverage"]) == (3, 1, 2, "1/3")
    assert run["missing_ids"] == ["b.avi", "c.avi"]


def test_rename_hide_delete_keep_the_log(store):
    from reports.responses import logs

    a = R.create_run(store, engine="baseline", name="one", selection=["a.avi"])
    b = R.create_run(store, engine="baseline", name="two", selection=["a.avi"])
    R.add_prediction(store, a, "a.avi", None, Verdict(ghost_probing=True, status="ok"))
    with pytest.raises(R.RunError, match="already exists"):
        R.rename_run(store, a, "two")
    R.rename_run(store, a, "renamed")
    assert R.get_run(store, "renamed")["run_id"] == a
    R.set_run_hidden(store, b, True)
    assert [r["run_id"] for r in R.list_runs(store)] == [a]
    assert {r["run_id"] for r in R.list_runs(store, include_hidden=True)} == {a, b}
    R.finish_run(store, a, "done")
    out = R.delete_run(store, a)
    assert out["responses_detached"] == 1
    with pytest.raises(R.RunError):
        R.get_run(store, a)
    assert store.scalar("SELECT count(*) FROM predictions") == 0
    assert len(logs(store)) == 1  # what the model said is still in the log


def test_unknown_label_set_lists_known(store):
    _labels(store, "dev", [("a.avi", True)])
    R.require_label_set(store, "dev")
    with pytest.raises(R.RunError, match=r"Unknown label set 'nope'; known label sets: dev\."):
        R.require_label_set(store, "nope")
