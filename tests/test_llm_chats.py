"""reports.chats: the chat log on a real DuckDB file."""

from __future__ import annotations

import threading

import pytest

from engines.base import CallRecord, GenerationOptions
from reports.chats import history, log_turn, turns


def _turn(store, chat_id, video="a.avi", **kw):
    base = dict(chat_id=chat_id, video_id=video, sha256="s", engine="openai", model="m", revision=None,
                prompt_hash="h", kind="chat", question="q", answer="a", verdict=None,
                options=GenerationOptions(), sampling={"num_frames": 16}, call=None, error=None)
    base.update(kw)
    return log_turn(store, **base)


def test_turn_numbers_and_fields(store):
    call = CallRecord(engine="openai", latency_s=1.5, decode_s=0.1, preprocess_s=0.2, generate_s=1.2,
                      prompt_tokens=100, completion_tokens=20)
    assert _turn(store, "c1", kind="detect", verdict={"status": "unparsed", "ghost_probing": None}, call=call) == 1
    assert _turn(store, "c1", question="q2", error="boom", answer=None) == 2
    assert _turn(store, "c2") == 1
    rows = turns(store, "c1")
    assert [r["turn"] for r in rows] == [1, 2]
    r = rows[0]
    assert r["verdict"]["status"] == "unparsed" and r["verdict"]["ghost_probing"] is None
    assert r["options"]["max_new_tokens"] == 512 and r["sampling"] == {"num_frames": 16}
    # latency_s is end to end (decode + the engine's 1.5 s); model_s is the engine alone
    assert (r["model_s"], r["decode_s"], r["prompt_tokens"], r["completion_tokens"]) == (1.5, 0.1, 100, 20)
    assert r["latency_s"] == pytest.approx(1.6)
    assert rows[1]["error"] == "boom" and rows[1]["answer"] is None and rows[1]["latency_s"] is None


def test_history_newest_first_filter_and_limit(store):
    for i in range(4):
        _turn(store, f"c{i}", video="a.avi" if i % 2 == 0 else "b.avi")
    _turn(store, "c0", question="again")  # c0 is now the most recently active
    h = history(store)
    assert h[0]["chat_id"] == "c0" and h[0]["n_turns"] == 2 and [t["turn"] for t in h[0]["turns"]] == [1, 2]
    assert {c["chat_id"] for c in history(store, video_id="b.avi")} == {"c1", "c3"}
    assert len(history(store, limit=2)) == 2
    assert history(store, video_id="none.avi") == []


def test_concurrent_writers_never_collide(store):
    errors = []

    def work():
        try:
            for _ in range(5):
                _turn(store, "shared")
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [r["turn"] for r in turns(store, "shared")] == list(range(1, 21))
