"""Evaluation runner and CLI: real clips, real engines (small ones defined here), real DuckDB files.

The engines below are real :class:`engines.base.Engine` subclasses registered in the registry: they
decode the clip's frames and answer from them. They exist so a test can count model calls and
control timing; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.base import CallRecord, DetectResult, Engine
from engines.errors import EngineError
from engines.registry import register
from engines.types import Verdict
from reports import runs as R
from reports.metrics import run_metrics
from reports.store import Store

ROOT = Path(__file__).resolve().parents[1]


# -- real small engines --------------------------------------------------------------------------------
class BrightnessEngine(Engine):
    """Says "ghost probing" when the clip's last sampled frame is brighter than its first."""

    name = "test-brightness"
    title = "test: brightness trend"
    remote = False
    default_sampling = {"num_frames": 4, "fps": None, "max_side": 64}
    calls = 0
    _lock = threading.Lock()
    cancel_after: tuple[int, threading.Event] | None = None
    fail_on: str | None = None
    in_flight = 0
    max_in_flight = 0
    delay_s = 0.0

    def availability(self):
        return True, ""

    def revision(self):
        return "v1"

    def ask(self, clip, messages, options):  # a chat model that reads its own answer (counts calls)
        cls = type(self)
        with cls._lock:
            cls.calls += 1
            cls.in_flight += 1
            cls.max_in_flight = max(cls.max_in_flight, cls.in_flight)
            n = cls.calls
        try:
            t0 = time.perf_counter()
            if cls.delay_s:
                time.sleep(cls.delay_s)
            if cls.fail_on and cls.fail_on in clip.source:
                raise EngineError("The test engine refuses this clip on purpose.")
            assert messages and messages[-1]["role"] == "user"
            first, last = float(clip.frames[0].mean()), float(clip.frames[-1].mean())
            gp = last > first
            conf = min(1.0, 0.5 + abs(last - first) / 100)
            raw = json.dumps({"鬼探头": gp, "置信度": round(conf, 3)}, ensure_ascii=False)
            v = Verdict(ghost_probing=gp, confidence=conf, status="ok", raw=raw, reason="brightness trend")
            return DetectResult(v, CallRecord(engine=self.name, model=self.model, latency_s=time.perf_counter() - t0,
                                              prompt_tokens=100, completion_tokens=10, device="cpu"))
        finally:
            with cls._lock:
                cls.in_flight -= 1
            if cls.cancel_after and n >= cls.cancel_after[0]:
                cls.cancel_after[1].set()


class RemoteBrightnessEngine(BrightnessEngine):
    name = "test-brightness-remote"
    remote = True


class ChatStyleEngine(Engine):
    """A video-LLM-shaped engine: streams text; detection is the base class's ask: chat → verdict.parse."""

    name = "test-chat-style"
    remote = True
    default_sampling = {"num_frames": 4, "fps": None, "max_side": 64}
    calls = 0

    def availability(self):
        return True, ""

    def stream_chat(self, clip, messages, options):
        type(self).calls += 1
        gp = float(clip.frames[-1].mean()) > float(clip.frames[0].mean())
        yield '{"ghost_probing": ' + ("true" if gp else "false")
        yield ', "confidence": 0.8, "reason": "亮度变化"}'
        self.last_call = CallRecord(engine=self.name, latency_s=0.01, prompt_tokens=50, completion_tokens=20)


register(BrightnessEngine)
register(RemoteBrightnessEngine)
register(ChatStyleEngine)


@pytest.fixture(autouse=True)
def _reset_engines():
    for cls in (BrightnessEngine, RemoteBrightnessEngine):
        cls.calls = cls.in_flight = cls.max_in_flight = 0
        cls.cancel_after = None
        cls.fail_on = None
        cls.delay_s = 0.0
    yield


# -- media -------------------------------------------------------------------------------------------
def make_clips(folder: Path, n: int, frames: int = 12, size=(96, 64), seed: int = 0) -> list[Path]:
    """n small MPEG-4 clips; even ones get brighter over time (label: ghost probing), odd ones darker."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / f"clip_{i:02d}.avi"
        wr = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
        assert wr.isOpened()
        for t in range(frames):
            ramp = int(160 * t / max(1, frames - 1))
            level = 40 + ramp if i % 2 == 0 else 200 - ramp
            f = np.full((size[1], size[0], 3), level, np.uint8)
            f[:, : 8 + int(rng.integers(0, 8))] = 0
            wr.write(f)
        wr.release()
        paths.append(p)
    return paths


def insert_labels(store: Store, name: str, items: dict[str, bool]) -> None:
    with store.write() as cur:
        cur.execute("INSERT INTO label_sets (name, source) VALUES (?, 'test')", [name])
        for vid, gp in items.items():
            cur.execute("INSERT INTO labels (label_set, video_id, ghost_probing, kind, onset_s) VALUES (?, ?, ?, ?, ?)",
                        [name, vid, gp, "ghost_probing" if gp else "none", 0.5 if gp else None])


@pytest.fixture
def clips(tmp_path):
    return make_clips(tmp_path / "clips", 6)


@pytest.fixture
def labelled(store, clips):
    insert_labels(store, "synth", {p.name: i % 2 == 0 for i, p in enumerate(clips)})
    return clips


# -- runner ------------------------------------------------------------------------------------------
def test_eval_scores_and_second_identical_run_is_fully_cached(store, labelled):
    from webapp.evaluation import run_eval

    events = []
    rid = run_eval(store, engine_name="test-brightness", label_set="synth", videos_dir=labelled[0].parent,
                   progress=events.append)
    assert BrightnessEngine.calls == 6
    assert rid.summary["text"] == "cached: 0/6, model calls: 6" and rid.summary["status"] == "done"
    m = run_metrics(store, rid)
    assert (m["tp"], m["tn"], m["fp"], m["fn"], m["n"]) == (3, 3, 0, 0, 6)
    assert m["accuracy"] == 1.0 and m["accuracy_ci"][0] < 0.7  # n=6 cannot prove much
    assert [e["index"] for e in events if e["event"] == "video"] == [1, 2, 3, 4, 5, 6]
    run = R.get_run(store, rid)
    assert run["status"] == "done" and run["location"] == "local-cpu" and run["revision"] == "v1"
    assert run["sampling"] == {"num_frames": 4, "fps": None, "max_side": 64}
    assert run["prompt_hash"] and run["prompt_id"]
    preds = R.predictions(store, rid)
    assert all(p["decode_s"] is not None and p["latency_s"] is not None and not p["cached"] for p in preds)

    again = run_eval(store, engine_name="test-brightness", label_set="synth", videos_dir=labelled[0].parent)
    assert BrightnessEngine.calls == 6  # no new model call
    assert again.summary["text"] == "cached: 6/6, model calls: 0"
    m2 = run_metrics(store, again)
    assert (m2["tp"], m2["tn"]) == (3, 3)
    assert all(p["cached"] for p in R.predictions(store, again))

    # anything that changes the answer misses the cache: here the prompt version
    from prompts import PromptLibrary

    lib = PromptLibrary.load()
    other = [t for t in lib.all() if t.kind == "detect" and t.hash != lib.detect_default().hash][0]
    third = run_eval(store, engine_name="test-brightness", label_set="synth", videos_dir=labelled[0].parent,
                     prompt_ref=other.ref)
    assert third.summary["model_calls"] == 6 and BrightnessEngine.calls == 12


def test_chat_style_engine_cached_text_is_reparsed_identically(store, labelled):
    from webapp.evaluation import run_eval

    ChatStyleEngine.calls = 0
    first = run_eval(store, engine_name="test-chat-style", label_set="synth", videos_dir=labelled[0].parent,
                     concurrency=2)
    second = run_eval(store, engine_name="test-chat-style", label_set="synth", videos_dir=labelled[0].parent)
    assert ChatStyleEngine.calls == 6 and second.summary["text"] == "cached: 6/6, model calls: 0"
    key = lambda p: (p["video_id"], p["ghost_probing"], p["confidence"], p["status"], p["raw"])  # noqa: E731
    assert sorted(map(key, R.predictions(store, first))) == sorted(map(key, R.predictions(store, second)))
    assert run_metrics(store, second)["accuracy"] == 1.0


def test_non_deterministic_options_never_use_the_cache(store, labelled):
    from webapp.evaluation import run_eval

    for _ in range(2):
        rid = run_eval(store, engine_name="test-brightness", label_set="synth", videos_dir=labelled[0].parent,
                       options={"temperature": 0.7})
    assert BrightnessEngine.calls == 12
    assert rid.summary["cached"] == 0 and "cache off" in rid.summary["text"]


def test_broken_video_and_engine_error_become_error_predictions(store, labelled, tmp_path):
    from webapp.evaluation import run_eval

    (labelled[0].parent / "broken.avi").write_bytes(b"this is not a video at all" * 100)
    BrightnessEngine.fail_on = "clip_03"
    rid = run_eval(store, engine_name="test-brightness", label_set="synth", videos_dir=labelled[0].parent)
    preds = {p["video_id"]: p for p in R.predictions(store, rid)}
    assert len(preds) == 7
    assert preds["broken.avi"]["status"] == "error" and preds["broken.avi"]["ghost_probing"] is None
    assert preds["broken.avi"]["reason"] and "\n" not in preds["broken.avi"]["reason"]
    assert preds["clip_03.avi"]["status"] == "error"
    assert preds["clip_03.avi"]["reason"] == "The test engine refuses this clip on purpose."
    m = run_metrics(store, rid)
    assert m["errors"] == 1 and m["unlabelled"] == 1  # broken.avi has no label; clip_03's error counts wrong
    assert m["fn"] == 0 and m["fp"] == 1 and m["metrics_both_ways"]["excluded"]["n"] == 5
    assert rid.summary["errors"] == 2 and rid.summary["model_calls"] == 6


def test_cancel_then_resume_writes_every_video_exactly_once(store, labelled):
    from webapp.evaluation import run_eval

    cancel = threading.Event()
    BrightnessEngine.cancel_after = (2, cancel)
    rid = run_eval(store, engine_name="test-brightness", label_set="synth", videos_dir=labelled[0].parent,
                   cancel=cancel, options={"temperature": 0.5})
    assert rid.summary["status"] == "cancelled" and R.get_run(store, rid)["status"] == "cancelled"
    assert store.scalar("SELECT count(*) FROM predictions WHERE run_id = ?", [rid]) == 2
    BrightnessEngine.cancel_after = None
    again = run_eval(store, resume=rid)
    assert str(again) == str(rid) and again.summary["skipped_done"] == 2 and again.summary["processed"] == 4
    assert R.get_run(store, rid)["status"] == "done"
    rows = store.query("SELECT video_id, count(*) AS c FROM predictions WHERE run_id = ? GROUP BY 1", [rid])
    assert len(rows) == 6 and all(r["c"] == 1 for r in rows)
    assert BrightnessEngine.calls == 6
    with pytest.raises(R.RunError, match="used engine 'test-brightness', not 'baseline'"):
        run_eval(store, resume=rid, engine_name="baseline")


def test_remote_engines_run_concurrently_local_ones_one_at_a_time(store, labelled):
    from webapp.evaluation import run_eval

    RemoteBrightnessEngine.delay_s = 0.15
    rid = run_eval(store, engine_name="test-brightness-remote", label_set="synth", videos_dir=labelled[0].parent,
                   concurrency=3, options={"temperature": 0.2})
    assert RemoteBrightnessEngine.max_in_flight == 3 and rid.summary["workers"] == 3
    assert R.get_run(store, rid)["location"] == "test-brightness-remote"
    BrightnessEngine.delay_s = 0.05
    rid = run_eval(store, engine_name="test-brightness", label_set="synth", videos_dir=labelled[0].parent,
                   concurrency=3, options={"temperature": 0.2})
    assert BrightnessEngine.max_in_flight == 1 and rid.summary["workers"] == 1


def test_library_videos_subset_and_location(store, labelled, monkeypatch):
    from webapp.evaluation import run_eval

    with store.write() as cur:
        for p in labelled:
            cur.execute("INSERT INTO videos (video_id, sha256, path, origin) VALUES (?, ?, ?, 'library')",
                        [p.name, "sha-" + p.stem, str(p)])
    monkeypatch.setenv("GHOSTPROBE_LOCATION", "azure:Standard_NC24s_v3:eastus")
    rid = run_eval(store, engine_name="test-brightness", label_set="synth", video_ids=["clip_00", "clip_01.avi"])
    assert {p["video_id"] for p in R.predictions(store, rid)} == {"clip_00.avi", "clip_01.avi"}
    # the clip's own bytes are hashed: a stale hash recorded at indexing time never keys an answer
    from engines.video import sha256_file

    assert {p["sha256"] for p in R.predictions(store, rid)} == {sha256_file(labelled[0]), sha256_file(labelled[1])}
    assert R.get_run(store, rid)["location"] == "azure:Standard_NC24s_v3:eastus"
    from reports.costs import run_cost

    assert run_cost(store, rid)["usd"] is not None  # measured seconds × a catalogue price
    everything = run_eval(store, engine_name="test-brightness", label_set="synth")  # every labelled library video
    assert everything.summary["videos"] == 6


def test_user_errors_are_one_sentence(store, labelled, tmp_path):
    from webapp.evaluation import run_eval

    cases = [
        (dict(engine_name="test-brightness", label_set="nope", videos_dir=labelled[0].parent), "Unknown label set 'nope'"),
        (dict(engine_name="test-brightness", label_set="synth", video_ids=["zzz"]), "No video in the library matches zzz"),
        (dict(engine_name="test-brightness", label_set="synth", videos_dir=tmp_path / "empty"), "is not a folder"),
        (dict(engine_name="no-such-engine", label_set="synth", videos_dir=labelled[0].parent), "Unknown engine"),
        (dict(engine_name="test-brightness", label_set="synth"), "None of the 6 videos of label set 'synth' is in the library"),
        (dict(resume="r-nope-nope"), "No run has the id or name"),
        # every option is validated before a run exists (a bad value never makes a "done" run of errors)
        (dict(engine_name="test-brightness", label_set="synth", videos_dir=labelled[0].parent,
              sampling={"max_side": -1}), "max_side must be at least 16 pixels"),
        (dict(engine_name="test-brightness", label_set="synth", videos_dir=labelled[0].parent,
              sampling={"num_frames": 0}), "number of frames must be at least 1"),
        (dict(engine_name="test-brightness", label_set="synth", videos_dir=labelled[0].parent,
              sampling={"num_frames": 100000}), "number of frames must be at most"),
        (dict(engine_name="test-brightness", label_set="synth", videos_dir=labelled[0].parent,
              sampling={"fps": float("nan"), "num_frames": None}), "sampling rate must be a positive number"),
        (dict(engine_name="test-brightness", label_set="synth", videos_dir=labelled[0].parent, concurrency=0),
         "Concurrency must be 1 or more"),
        (dict(engine_name="test-brightness", label_set="synth", videos_dir=labelled[0].parent, workers=0),
         "number of workers must be 1 or more"),
        (dict(engine_name="test-brightness", label_set="synth", videos_dir=labelled[0].parent,
              options={"max_new_tokens": 0}), "max_new_tokens must be a whole number of at least 1"),
        (dict(engine_name="baseline", label_set="synth", videos_dir=labelled[0].parent,
              prompt_ref="ghost_probing"), "is a detector and takes no prompt"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(Exception, match=msg) as e:
            run_eval(store, **kwargs)
        assert str(e.value).endswith(".") and "\n" not in str(e.value)
    assert store.scalar("SELECT count(*) FROM runs") == 0


# -- CLI in process ----------------------------------------------------------------------------------
def cli(*argv, db):
    from webapp.cli import main

    return main(["--db", str(db), *argv])


def test_cli_eval_json_runs_show_list_compare(tmp_path, clips, capsys, monkeypatch):
    monkeypatch.setenv("GHOSTPROBE_DATA_DIR", str(tmp_path / "data"))
    db = tmp_path / "cli.duckdb"
    s = Store(db)
    insert_labels(s, "synth", {p.name: i % 2 == 0 for i, p in enumerate(clips)})
    s.close()
    assert cli("eval", "--engine", "test-brightness", "--labels", "synth", "--videos", str(clips[0].parent),
               "--name", "first", "--json", db=db) == 0
    out = capsys.readouterr()
    first = json.loads(out.out)
    assert set(first) >= {"run_id", "metrics", "cache"}
    assert first["cache"]["text"] == "cached: 0/6, model calls: 6"
    assert first["metrics"]["accuracy"] == 1.0 and first["metrics"]["accuracy_ci"][1] == 1.0
    assert first["metrics"]["label_set"] == "synth" and first["metrics"]["n"] == 6
    assert first["cost"]["usd"] is None and "not set" in first["cost"]["reason"]  # local price unknown ≠ 0
    lines = out.err.strip().splitlines()
    assert any(line.startswith("[1/6] clip_00.avi ✓") for line in lines), out.err
    assert cli("eval", "--engine", "test-brightness", "--labels", "synth", "--videos", str(clips[0].parent),
               "--name", "second", "--json", db=db) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["cache"]["text"] == "cached: 6/6, model calls: 0" and second["cost"]["usd"] == 0.0

    assert cli("runs", "show", "first", "--json", db=db) == 0
    shown = json.loads(capsys.readouterr().out)
    for k in ("run_id", "n", "tp", "fp", "tn", "fn", "unparsed", "errors", "accuracy", "accuracy_ci",
              "balanced_accuracy", "precision", "recall", "specificity", "f1", "label_set", "policy",
              "metrics_both_ways"):
        assert k in shown
    assert cli("runs", "list", "--json", db=db) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in listed] == ["second", "first"]
    assert cli("runs", "compare", "first", "second", "--json", db=db) == 0
    cmp_ = json.loads(capsys.readouterr().out)
    assert cmp_["mcnemar_p"] == 1.0 and cmp_["shared"]["n"] == 6 and cmp_["flipped"]["right_to_wrong"] == []
    assert cli("runs", "list", db=db) == 0 and "acc 100.0%" in capsys.readouterr().out
    assert cli("runs", "show", "first", "--predictions", db=db) == 0
    assert "clip_05.avi" in capsys.readouterr().out


def test_cli_import_predictions(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GHOSTPROBE_DATA_DIR", str(tmp_path / "data"))
    db = tmp_path / "imp.duckdb"
    s = Store(db)
    insert_labels(s, "synth", {"a.avi": True, "b.avi": False, "c.avi": True})
    s.close()
    f = tmp_path / "peer.jsonl"
    f.write_text('{"id": "a", "answer": "Ghost probing: yes"}\n{"id": "b", "answer": "no ghost probing"}\n'
                 '{"id": "c", "answer": "unclear"}\n', encoding="utf-8")
    assert cli("import-predictions", str(f), "--name", "peer", "--labels", "synth", "--video-field", "id",
               "--answer-field", "answer", "--positive", "ghost probing", "--negative", "^no", "--json", db=db) == 0
    got = json.loads(capsys.readouterr().out)
    assert (got["yes"], got["no"], got["unparsed"]) == (1, 1, 1)
    assert (got["metrics"]["tp"], got["metrics"]["tn"], got["metrics"]["fn"]) == (1, 1, 1)  # unparsed positive → FN
    assert cli("runs", "show", "peer", db=db) == 0
    out = capsys.readouterr().out
    assert "decision: point estimate 67%" in out and "Cost unknown" in out
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    assert cli("import-predictions", str(bad), "--name", "bad", "--labels", "synth", "--video-field", "id",
               "--answer-field", "answer", "--positive", "x", db=db) == 2
    assert "is not valid JSON" in capsys.readouterr().err


def test_cli_user_errors_exit_2_with_one_sentence(tmp_path, clips, capsys, monkeypatch):
    monkeypatch.setenv("GHOSTPROBE_DATA_DIR", str(tmp_path / "data"))
    db = tmp_path / "cli.duckdb"
    s = Store(db)
    insert_labels(s, "synth", {p.name: True for p in clips})
    s.close()
    for argv, msg in (
        (("eval", "--engine", "test-brightness", "--labels", "nope", "--videos", str(clips[0].parent)), "Unknown label set"),
        (("eval", "--engine", "test-brightness", "--labels", "synth", "--subset", "zzz"), "No video in the library"),
        (("runs", "show", "nope"), "No run has the id or name 'nope'"),
        (("runs", "compare", "a", "b"), "No run has"),
        (("eval", "--engine", "test-brightness"), "needs --engine and --labels"),
        (("report", "--out", str(tmp_path / "r.txt")), "must name an .html file"),
    ):
        assert cli(*argv, db=db) == 2, argv
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


# -- Ctrl-C (SIGINT) mid-run: in-flight videos finish, the run is marked cancelled, resume completes it ----
def test_sigint_cancels_consistently_then_resume(tmp_path, clips):
    db = tmp_path / "int.duckdb"
    s = Store(db)
    insert_labels(s, "synth", {p.name: i % 2 == 0 for i, p in enumerate(clips)})
    s.close()
    env = {**os.environ, "GHOSTPROBE_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*_driver(0.4), "--db", str(db), "eval", "--engine", "test-brightness",
                             "--labels", "synth", "--videos", str(clips[0].parent), "--name", "interrupted"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    while True:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("[1/"):
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    lines += err.splitlines(keepends=True)
    assert proc.returncode == 130, "".join(lines)
    assert "resume with: ghostprobe eval --resume" in out
    progressed = [ln for ln in lines if re.match(r"\[\d+/6\]", ln)]
    s = Store(db)
    try:
        run = R.get_run(s, "interrupted")
        n = s.scalar("SELECT count(*) FROM predictions WHERE run_id = ?", [run["run_id"]])
        assert run["status"] == "cancelled" and run["finished_at"] is not None
        assert n == len(progressed) and 1 <= n < 6  # every prediction written was reported, none half-done
        # the summary agrees with the store (it is counted from it): "cached: 0/n", never more or fewer
        done_line = next(ln for ln in lines if ln.startswith("cancelled:"))
        assert re.search(rf"cached: 0/{n}, model calls: {n}\b", done_line), done_line
        again = __import__("webapp.evaluation", fromlist=["run_eval"]).run_eval(s, resume="interrupted")
        assert again.summary["skipped_done"] == n and again.summary["processed"] == 6 - n
        rows = s.query("SELECT video_id, count(*) AS c FROM predictions WHERE run_id = ? GROUP BY 1", [run["run_id"]])
        assert len(rows) == 6 and all(r["c"] == 1 for r in rows)
        assert R.get_run(s, "interrupted")["status"] == "done"
    finally:
        s.close()


# -- SIGKILL mid-run, then resume: every video exactly once --------------------------------------------
def _demo_clips(folder: Path) -> list[Path]:
    try:
        from engines.synth import render_demo_clips

        return render_demo_clips(folder)
    except ImportError:
        return make_clips(folder, 8, frames=60, size=(320, 180))


def _driver(delay_s: float) -> list[str]:
    """`python -c ...` that registers this file's engines, then runs the real CLI entry point."""
    code = ("import sys; sys.path[:0] = [{root!r}, {tests!r}]; import test_eval_cli as t; "
            "t.BrightnessEngine.delay_s = {delay}; from webapp.cli import main; sys.exit(main(sys.argv[1:]))"
            ).format(root=str(ROOT), tests=str(ROOT / "tests"), delay=delay_s)
    return [sys.executable, "-c", code]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["baseline", "test-brightness"])
def test_sigkill_mid_run_then_resume_exactly_once(tmp_path, engine):
    from engines.registry import all_engines

    if engine == "baseline" and "baseline" not in all_engines():
        pytest.skip("the baseline engine is not in this checkout yet")
    folder = tmp_path / "demo"
    paths = _demo_clips(folder) if engine == "baseline" else []
    paths += make_clips(folder, 6, frames=60, size=(320, 180), seed=1)
    db = tmp_path / "kill.duckdb"
    s = Store(db)
    insert_labels(s, "demo", {p.name: i % 2 == 0 for i, p in enumerate(paths)})
    s.close()
    env = {**os.environ, "GHOSTPROBE_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    prog = [sys.executable, "-m", "webapp.cli"] if engine == "baseline" else _driver(0.3)
    cmd = [*prog, "--db", str(db), "eval", "--engine", engine, "--labels", "demo", "--videos", str(folder),
           "--name", "killed"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("[1/"):  # the first prediction is committed before its progress line
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    s = Store(db)
    try:
        run = R.get_run(s, "killed")
        done_before = s.scalar("SELECT count(*) FROM predictions WHERE run_id = ?", [run["run_id"]])
        assert run["status"] == "running"  # killed: nobody could mark it
        assert 1 <= done_before < len(paths)
    finally:
        s.close()
    res = subprocess.run([*prog, "--db", str(db), "eval", "--resume", "killed", "--json"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["summary"]["skipped_done"] == done_before
    assert out["summary"]["processed"] == len(paths) - done_before
    s = Store(db)
    try:
        rows = s.query("SELECT video_id, count(*) AS c FROM predictions WHERE run_id = ? GROUP BY 1", [run["run_id"]])
        assert sorted(r["video_id"] for r in rows) == sorted(p.name for p in paths)
        assert all(r["c"] == 1 for r in rows)
        assert R.get_run(s, "killed")["status"] == "done"
    finally:
        s.close()
