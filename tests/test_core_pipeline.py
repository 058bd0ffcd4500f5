"""The prediction core and the response log, end to end on real parts.

- two loopback chat-completions servers serving different models under the same configuration:
  switching the base URL misses the cache, the same server hits it;
- a library file replaced by other bytes of the same size: the rerun misses and records the new hash;
- a label set with videos missing from the library: the run is partial and says scored/planned in
  ``runs show --json``, the runs table and the HTML export;
- a database written by the previous schema upgrades with every prediction, chat turn and review;
- ``ghostprobe logs --json`` after a detect, a chat turn and a 12-video eval shows 14 rows with the
  prompt text for the prompt-taking engine and the identity fields.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from engines.base import DETECTOR, Artifacts, CallRecord, Detection, Engine
from engines.registry import register
from engines.types import Verdict
from reports import runs as R
from reports.store import Store
from test_eval_cli import insert_labels, make_clips
from test_llm_openai import FakeServer


class CountingDetector(Engine):
    """A detector (no prompt) that measures mean brightness; counts how often it really ran."""

    name = "test-counting-detector"
    kinds = frozenset({DETECTOR})
    default_sampling = {"num_frames": 4, "fps": None, "max_side": 64}
    calls = 0
    _lock = threading.Lock()

    def availability(self):
        return True, "ready"

    def describe(self):
        return {"model": "brightness-v1", "revision": "r1"}

    def detect(self, clip, options=None):
        with type(self)._lock:
            type(self).calls += 1
        t0 = time.perf_counter()
        m = float(clip.frames.mean())
        v = Verdict(ghost_probing=m > 120, confidence=0.6, status="ok", raw=json.dumps({"mean": m}))
        return Detection(v, CallRecord(engine=self.name, latency_s=time.perf_counter() - t0, device="cpu"),
                         Artifacts(tracks={"score": [(0.0, m / 255)]}, thresholds={"score": 0.47}))


register(CountingDetector)


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    for k in ("GHOSTPROBE_OPENAI_BASE_URL", "GHOSTPROBE_OPENAI_API_KEY", "OPENAI_API_KEY", "GHOSTPROBE_OPENAI_MODEL",
              "GHOSTPROBE_OPENAI_VIDEO_MODE", "GHOSTPROBE_LOCATION"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("GHOSTPROBE_DATA_DIR", str(tmp_path / "data"))
    CountingDetector.calls = 0


def _index(store: Store, paths: list[Path]) -> None:
    from engines.video import sha256_file

    with store.write() as cur:
        for p in paths:
            cur.execute("INSERT INTO videos (video_id, sha256, path, origin) VALUES (?, ?, ?, 'library')",
                        [p.name, sha256_file(p), str(p)])


def test_switching_the_server_misses_the_cache_and_the_same_server_hits(store, tmp_path, monkeypatch):
    from webapp.evaluation import run_eval

    clips = make_clips(tmp_path / "clips", 3)
    insert_labels(store, "synth", {p.name: i % 2 == 0 for i, p in enumerate(clips)})
    a, b = FakeServer(models=["model-alpha"]), FakeServer(models=["model-beta"])
    try:
        monkeypatch.setenv("GHOSTPROBE_OPENAI_BASE_URL", a.url)  # the model is left to the server
        first = run_eval(store, engine_name="openai", label_set="synth", videos_dir=clips[0].parent)
        assert first.summary["model_calls"] == 3 and first.summary["cached"] == 0
        again = run_eval(store, engine_name="openai", label_set="synth", videos_dir=clips[0].parent)
        assert (again.summary["cached"], again.summary["model_calls"]) == (3, 0)  # same server: served from cache
        assert len(a.requests) == 3
        monkeypatch.setenv("GHOSTPROBE_OPENAI_BASE_URL", b.url)  # same configuration, another server
        other = run_eval(store, engine_name="openai", label_set="synth", videos_dir=clips[0].parent)
        assert (other.summary["cached"], other.summary["model_calls"]) == (0, 3)
        assert len(b.requests) == 3 and {r["model"] for r in b.requests} == {"model-beta"}
    finally:
        a.close()
        b.close()
    ra, rb = R.get_run(store, first), R.get_run(store, other)
    assert ra["model"] == "model-alpha" and rb["model"] == "model-beta"
    assert ra["identity"]["endpoint"] != rb["identity"]["endpoint"] and ra["identity_hash"] != rb["identity_hash"]
    reported = {r["model_reported"] for r in store.query("SELECT model_reported FROM responses WHERE run_id = ?",
                                                          [str(other)])}
    assert reported == {"model-beta"}


def test_a_replaced_file_of_the_same_size_misses_the_cache(store, tmp_path):
    from engines.video import sha256_file
    from webapp.evaluation import run_eval

    clips = make_clips(tmp_path / "clips", 2)
    _index(store, clips)
    insert_labels(store, "s", {p.name: True for p in clips})
    first = run_eval(store, engine_name=CountingDetector.name, label_set="s")
    assert CountingDetector.calls == 2
    again = run_eval(store, engine_name=CountingDetector.name, label_set="s")
    assert CountingDetector.calls == 2 and again.summary["cached"] == 2
    target = clips[0]
    old_hash = sha256_file(target)
    replacement = make_clips(tmp_path / "other", 2, seed=7, frames=12)[1]  # other bytes …
    data = replacement.read_bytes()
    size = target.stat().st_size
    data = (data + b"\0" * size)[:size] if len(data) < size else data[:size]  # … of the same size
    st = target.stat()
    target.write_bytes(data)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert target.stat().st_size == size
    third = run_eval(store, engine_name=CountingDetector.name, label_set="s")
    preds = {p["video_id"]: p for p in R.predictions(store, third)}
    assert preds[target.name]["sha256"] != old_hash and preds[target.name]["sha256"] == sha256_file(target)
    assert preds[target.name]["cached"] is False and preds[clips[1].name]["cached"] is True
    assert CountingDetector.calls >= 2  # the replaced file was not answered from the old file's cache
    assert store.scalar("SELECT sha256 FROM predictions WHERE run_id = ? AND video_id = ?",
                        [str(first), target.name]) == old_hash  # the first run keeps what it answered


def test_missing_videos_make_a_partial_run_everywhere(store, tmp_path, capsys):
    from reports.export import build_html
    from webapp.cli import main
    from webapp.evaluation import run_eval

    clips = make_clips(tmp_path / "clips", 1)
    _index(store, clips)
    labels = {clips[0].name: True, **{f"absent_{i:02d}.avi": i % 2 == 0 for i in range(11)}}
    insert_labels(store, "twelve", labels)
    events: list[dict] = []
    rid = run_eval(store, engine_name=CountingDetector.name, label_set="twelve", progress=events.append)
    start = next(e for e in events if e["event"] == "start")
    assert (start["planned"], start["missing"]) == (12, 11)  # said before it starts
    assert rid.summary["status"] == "partial" and (rid.summary["scored"], rid.summary["planned"]) == (1, 12)
    db = store.path
    store.close()
    assert main(["--db", db, "runs", "show", str(rid), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "partial"
    assert (shown["planned"], shown["scored"], shown["missing"]) == (12, 1, 11)
    assert main(["--db", db, "runs", "list"]) == 0
    listing = capsys.readouterr().out
    assert "partial" in listing and "1/12" in listing
    s2 = Store(db)
    try:
        html = build_html(s2, [str(rid)], lang="en")
        assert "1/12" in html and "partial" in html.lower()
    finally:
        s2.close()


def test_the_previous_schema_upgrades_with_everything_intact(tmp_path):
    import duckdb

    from reports.migrations import MIGRATIONS

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)")
    for name, fn in MIGRATIONS[:7]:  # the schema as it shipped before the response log
        fn(con)
        con.execute("INSERT INTO _migrations (name) VALUES (?)", [name])
    con.execute("""INSERT INTO runs (run_id, name, engine, model, prompt_hash, options, sampling, label_set, selection,
                                     status) VALUES
                   ('r1', 'old run', 'openai', 'gpt-4o', 'ph', '{"temperature": 0.0}', '{"num_frames": 16}', 'dev',
                    '["a.avi", "b.avi"]', 'done')""")
    con.execute("""INSERT INTO predictions (run_id, video_id, sha256, ghost_probing, confidence, status, raw, reason,
                                            latency_s, decode_s, prompt_tokens, completion_tokens, cached) VALUES
                   ('r1', 'a.avi', 'sa', true, 0.9, 'ok', '{"是否鬼探头": "是"}', 'r', 2.0, 0.5, 100, 10, false),
                   ('r1', 'b.avi', 'sb', NULL, NULL, 'unparsed', '嗯……', '', 1.0, NULL, 90, 5, false)""")
    con.execute("""INSERT INTO chats (chat_id, turn, video_id, engine, model, kind, question, answer, verdict, error,
                                      latency_s, decode_s) VALUES
                   ('c1', 1, 'a.avi', 'openai', 'gpt-4o', 'detect', '有鬼探头吗？', '{"是否鬼探头": "否"}',
                    '{"ghost_probing": false, "status": "ok", "confidence": 0.7}', NULL, 3.0, 1.0),
                   ('c1', 2, 'a.avi', 'openai', 'gpt-4o', 'chat', '为什么？', '因为没有行人', NULL, NULL, 2.0, NULL),
                   ('c2', 1, 'b.avi', 'openai', 'gpt-4o', 'chat', '画面里有什么？', NULL, NULL, 'timeout', NULL, NULL)""")
    con.execute("INSERT INTO reviews (run_id, video_id, mark, comment) VALUES ('r1', 'a.avi', 'agree', 'ok')")
    con.execute("""INSERT INTO response_cache (key, engine, model, answer, verdict, latency_s) VALUES
                   ('k-old', 'openai', 'gpt-4o', '{"是否鬼探头": "是"}', '{"ghost_probing": true, "status": "ok"}', 2.0)""")
    con.close()

    s = Store(path)
    try:
        assert "m008_responses" in s.applied and "m009_run_coverage" in s.applied
        preds = {p["video_id"]: p for p in R.predictions(s, "r1")}
        assert preds["a.avi"]["ghost_probing"] is True and preds["a.avi"]["confidence"] == 0.9
        assert preds["a.avi"]["raw"] == '{"是否鬼探头": "是"}' and preds["a.avi"]["prompt_tokens"] == 100
        # the old latency was the engine's own time: it becomes model_s; latency_s is now end to end
        assert preds["a.avi"]["model_s"] == 2.0 and preds["a.avi"]["latency_s"] == 2.5
        assert preds["b.avi"]["status"] == "unparsed" and preds["b.avi"]["ghost_probing"] is None
        from reports.chats import turns

        c1 = turns(s, "c1")
        assert [t["turn"] for t in c1] == [1, 2] and c1[0]["verdict"]["ghost_probing"] is False
        assert c1[1]["answer"] == "因为没有行人" and c1[1]["verdict"] is None
        assert turns(s, "c2")[0]["error"] == "timeout"
        assert R.reviews(s, "r1")[0]["comment"] == "ok"
        run = R.get_run(s, "old run")
        assert run["planned"] == 2 and run["status"] == "done" and run["coverage"] == "2/2"
        legacy = s.query("SELECT * FROM responses WHERE kind = 'cache-legacy'")
        assert len(legacy) == 1 and legacy[0]["response"] == '{"是否鬼探头": "是"}'
        assert s.scalar("SELECT count(*) FROM responses") == 6
    finally:
        s.close()
    again = Store(path)  # idempotent
    try:
        assert again.applied == [] and again.scalar("SELECT count(*) FROM responses") == 6
    finally:
        again.close()


def test_logs_after_detect_chat_and_a_twelve_video_eval(tmp_path, monkeypatch, capsys):
    from webapp.cli import main

    clips = make_clips(tmp_path / "clips", 12)
    db = str(tmp_path / "logs.duckdb")
    s = Store(db)
    insert_labels(s, "twelve", {p.name: i % 2 == 0 for i, p in enumerate(clips)})
    s.close()
    srv = FakeServer(models=["served-model"])
    try:
        monkeypatch.setenv("GHOSTPROBE_OPENAI_BASE_URL", srv.url.replace("http://", "http://user:pa55word@"))
        assert main(["--db", db, "detect", str(clips[0]), "--engine", "openai", "--json"]) == 0
        assert main(["--db", db, "chat", str(clips[0]), "画面里有什么？", "--engine", "openai"]) == 0
        assert main(["--db", db, "eval", "--engine", "openai", "--labels", "twelve", "--videos",
                     str(clips[0].parent), "--json"]) == 0
        capsys.readouterr()
        assert main(["--db", db, "logs", "-n", "50", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
    finally:
        srv.close()
    assert len(rows) == 14
    assert sorted({r["kind"] for r in rows}) == ["chat", "detect", "eval"]
    assert sum(r["kind"] == "eval" for r in rows) == 12
    for r in rows:
        assert r["prompt_text"] and r["prompt_hash"]  # the openai engine takes a prompt: its text is stored
        ident = r["identity"]
        assert ident["engine"] == "openai" and ident["model"] == "served-model"
        assert ident["endpoint"] == srv.url.rstrip("/")  # host and path, never the credentials
        assert r["endpoint"] == srv.url.rstrip("/") and r["identity_hash"]
        assert r["latency_s"] is not None and r["decode_s"] is not None
        assert "pa55word" not in json.dumps(r, ensure_ascii=False)
    chat = next(r for r in rows if r["kind"] == "chat")
    assert chat["question"] == "画面里有什么？" and chat["response"]


def test_worker_processes_answer_like_one_process(store, tmp_path):
    """The baseline on 2 worker processes logs the same answers as on one, each video exactly once."""
    from webapp.evaluation import run_eval

    clips = make_clips(tmp_path / "clips", 4, frames=24, size=(160, 96))
    insert_labels(store, "w", {p.name: i % 2 == 0 for i, p in enumerate(clips)})
    one = run_eval(store, engine_name="baseline", label_set="w", videos_dir=clips[0].parent, workers=1,
                   use_cache=False)
    two = run_eval(store, engine_name="baseline", label_set="w", videos_dir=clips[0].parent, workers=2,
                   use_cache=False)
    assert one.summary["mode"] == "serial" and two.summary["mode"] == "processes"
    a = {p["video_id"]: (p["status"], p["ghost_probing"], p["confidence"]) for p in R.predictions(store, one)}
    b = {p["video_id"]: (p["status"], p["ghost_probing"], p["confidence"]) for p in R.predictions(store, two)}
    assert a == b and len(b) == 4
    assert two.summary["model_calls"] == 4 and two.summary["processed"] == 4
    # a detector's run carries no prompt and no generation options
    run = R.get_run(store, two)
    assert run["prompt_id"] is None and run["prompt_hash"] is None and run["engine_kind"] == "detector"


def test_worker_processes_start_while_the_run_is_planned_and_stop_when_planning_fails(store, tmp_path):
    """A CPU engine's worker processes start as soon as the engine and settings are valid, warmed up (the
    engine built in each worker before any video), and the run uses them; planning that fails after
    they started shuts them down; one video is the serial mode and gets none."""
    import multiprocessing as mp

    from webapp import evaluation as E

    clips = make_clips(tmp_path / "clips", 3, frames=24, size=(160, 96))
    insert_labels(store, "w", {p.name: i % 2 == 0 for i, p in enumerate(clips)})
    plan = E.plan_run(store, engine_name="baseline", label_set="w", videos_dir=clips[0].parent, workers=2,
                      use_cache=False)
    assert plan.mode == "processes" and plan.pool is not None
    assert len(plan.pool._processes) == 2  # both started by planning, before any video was sent
    # asked with eval (a builtin): a function of this module would make the worker import it, and the store
    built = "sorted((k[0], k[1]) for k in __import__('webapp.predict').predict._WORKER_ENGINES)"
    store_mods = "sorted(m for m in __import__('sys').modules if m.split('.')[0] in ('duckdb', 'reports'))"
    for _ in range(4):
        assert plan.pool.submit(eval, built).result(timeout=60) == [("baseline", "baseline-flow-v1")]
        assert plan.pool.submit(eval, store_mods).result(timeout=60) == []  # a worker never loads the store
    summary = E.schedule(plan)
    assert summary["mode"] == "processes" and summary["model_calls"] == 3 and plan.pool is None
    _no_children_left(mp)
    with pytest.raises(Exception, match="not a folder|does not exist|No such|not found"):
        E.plan_run(store, engine_name="baseline", label_set="w", videos_dir=tmp_path / "nowhere", workers=2)
    _no_children_left(mp)
    single = make_clips(tmp_path / "single", 1, frames=24, size=(160, 96))
    one = E.plan_run(store, engine_name="baseline", label_set="w", videos_dir=single[0].parent, workers=2)
    assert one.mode == "serial" and one.pool is None
    _no_children_left(mp)


def test_cli_eval_starts_its_workers_before_it_opens_the_store_and_stops_them_when_planning_fails(
        tmp_path, capsys, monkeypatch):
    """``ghostprobe eval`` with a CPU engine spawns its worker processes first (their start-up overlaps the
    parent's imports and planning), the run uses that pool (no second one), and a run that cannot be
    planned exits 2 with its one sentence and leaves no worker behind."""
    import multiprocessing as mp

    from reports import store as S
    from webapp import evaluation as E
    from webapp import predict as P
    from webapp.cli import main

    if (os.cpu_count() or 1) < 2:
        pytest.skip("two worker processes need two cores")
    monkeypatch.setenv("GHOSTPROBE_DATA_DIR", str(tmp_path / "data"))
    clips = make_clips(tmp_path / "clips", 3, frames=24, size=(160, 96))
    db = tmp_path / "cli.duckdb"
    s = Store(db)
    insert_labels(s, "w", {p.name: i % 2 == 0 for i, p in enumerate(clips)})
    s.close()
    events: list[str] = []
    real_pool, real_init = P.start_pool, S.Store.__init__

    def pool_seen(workers, spec):
        events.append(f"pool {workers} {spec[0]}")
        return real_pool(workers, spec)

    def store_seen(self, *a, **kw):
        events.append("store")
        return real_init(self, *a, **kw)

    monkeypatch.setattr(P, "start_pool", pool_seen)
    monkeypatch.setattr(E, "start_pool", pool_seen)
    monkeypatch.setattr(S.Store, "__init__", store_seen)
    argv = ["--db", str(db), "eval", "--engine", "baseline", "--labels", "w", "--videos", str(clips[0].parent),
            "--workers", "2", "--no-cache", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["mode"] == "processes" and out["summary"]["model_calls"] == 3
    assert events[0] == "pool 2 baseline" and events.count("pool 2 baseline") == 1, events
    assert "store" in events[1:], events
    _no_children_left(mp)
    events.clear()
    bad = ["--db", str(db), "eval", "--engine", "baseline", "--labels", "nope", "--videos", str(clips[0].parent),
           "--workers", "2"]
    assert main(bad) == 2
    err = capsys.readouterr().err.strip()
    assert "Unknown label set 'nope'" in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert events[0] == "pool 2 baseline", events  # started, then shut down by the failed planning
    _no_children_left(mp)


def _no_children_left(mp, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while mp.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert mp.active_children() == []


def _no_children_left(mp, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while mp.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert mp.active_children() == []


_ORPHAN_SCRIPT = """
import os, sys
if __name__ == "__main__":
    sys.path.insert(0, sys.argv[1])
    from webapp import predict as P
    pool = P.start_pool(2, ("baseline", None, {}))
    pids = {pool.submit(os.getpid).result(timeout=120) for _ in range(8)} | {p for p in pool._processes}
    print(" ".join(str(p) for p in sorted(pids)), flush=True)
    os._exit(0)  # no shutdown: as a killed dashboard or CLI would end
"""


def test_worker_processes_end_when_their_parent_dies_without_shutting_them_down(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "parent.py"
    script.write_text(_ORPHAN_SCRIPT)
    out = subprocess.run([sys.executable, str(script), str(Path(__file__).resolve().parents[1])],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        try:  # a zombie (exited, not yet reaped by init) counts as gone
            return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 30
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in pids if alive(p)]
    for p in left:
        os.kill(p, 9)
    assert left == []

