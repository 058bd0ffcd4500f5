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
    R.finish_run(store, rid, "done")
    run = R.get_run(store, rid)
    assert run["status"] == "done" and run["finished_at"] is not None
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


def test_cache_key_covers_everything_that_changes_the_answer(store):
    base = dict(sha256="s", engine="e", model="m", revision="r", prompt_hash="p",
                options={"temperature": 0.0, "max_new_tokens": 64, "timeout_s": 30}, sampling={"num_frames": 8})
    k = R.cache_key(**base)
    for field, other in (("sha256", "t"), ("engine", "f"), ("model", "n"), ("revision", "q"), ("prompt_hash", "z"),
                         ("options", {"temperature": 0.0, "max_new_tokens": 65}), ("sampling", {"num_frames": 9})):
        assert R.cache_key(**{**base, field: other}) != k, field
    # a timeout changes whether an answer arrives, not which one
    assert R.cache_key(**{**base, "options": {"temperature": 0.0, "max_new_tokens": 64, "timeout_s": 99}}) == k
    assert R.cache_get(store, k) is None
    v = Verdict(ghost_probing=True, confidence=0.7, status="ok", raw='{"鬼探头": true}')
    R.cache_put(store, k, engine="e", model="m", verdict=v, call=CallRecord(engine="e", latency_s=2.0))
    hit = R.cache_get(store, k)
    assert hit["verdict"]["ghost_probing"] is True and hit["latency_s"] == 2.0 and hit["answer"] == v.raw
    R.cache_put(store, "k2", engine="e", model="m", verdict=Verdict.error("timeout"))
    assert R.cache_get(store, "k2") is None  # errors are never cached


def test_unknown_label_set_lists_known(store):
    _labels(store, "dev", [("a.avi", True)])
    R.require_label_set(store, "dev")
    with pytest.raises(R.RunError, match=r"Unknown label set 'nope'; known label sets: dev\."):
        R.require_label_set(store, "nope")
