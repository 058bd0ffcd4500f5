"""The run folder (reports.run_folder): written, read back, ingested as a run whose metrics equal a run
made directly from the same predictions; ingesting twice adds nothing; bad lines are one sentence."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))

from engines.base import CallRecord, EngineIdentity
from engines.types import Verdict
from reports import metrics as M
from reports import run_folder as RF
from reports import runs as R

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]

IDENT = EngineIdentity(engine="transformers", kind="chat", model="tiny/random-qwen2-vl", revision="abc123",
                       dtype="float32", options={"max_new_tokens": 64, "temperature": 0.0},
                       sampling={"num_frames": 8, "max_side": 224}, prompt_hash="f" * 64)

# (video, label, verdict, call)
CASES = [
    ("images_1_001.avi", True, Verdict(True, 0.9, "high", "pedestrian", 2.5, "a child runs out", "ok", "是，鬼探头"),
     CallRecord("transformers", latency_s=1.5, decode_s=0.2, preprocess_s=0.1, generate_s=1.3, prompt_tokens=900,
                completion_tokens=40, device="cpu")),
    ("images_1_002.avi", False, Verdict(False, 0.8, "low", None, None, "clear road", "ok", "否"),
     CallRecord("transformers", latency_s=1.2, decode_s=0.2, prompt_tokens=880, completion_tokens=20, device="cpu")),
    ("images_1_003.avi", True, Verdict(False, 0.6, "low", None, None, "nothing", "ok", "否，没有"),
     CallRecord("transformers", latency_s=1.1, decode_s=0.3, prompt_tokens=870, completion_tokens=25, device="cpu")),
    ("images_1_004.avi", False, Verdict(status="unparsed", raw="I cannot tell."),
     CallRecord("transformers", latency_s=0.9, decode_s=0.2, prompt_tokens=860, completion_tokens=5, device="cpu")),
    ("images_1_005.avi", True, Verdict(True, 0.7, "medium", "cyclist", 1.0, "bike from behind a bus", "ok", "是"),
     CallRecord("transformers", latency_s=1.4, decode_s=0.2, prompt_tokens=910, completion_tokens=44, device="cpu")),
    ("images_1_006.avi", False, Verdict.error("The engine ran out of memory."), None),
]


def _labels(store, name="dev"):
    with store.write() as cur:
        cur.execute("INSERT INTO label_sets (name, source) VALUES (?, 'test')", [name])
        for vid, lab, _, _ in CASES:
            cur.execute("INSERT INTO labels (label_set, video_id, ghost_probing, kind) VALUES (?, ?, ?, ?)",
                        [name, vid, lab, "ghost_probing" if lab else "none"])


def _manifest(run_id="r20261202-071800-ab12", **kw):
    m = {"run_id": run_id, "identity": IDENT.to_dict(),
         "prompt": {"ref": "ghost_probing@3", "hash": "f" * 64, "text": "id: ghost_probing\nversion: 3\n"},
         "label_set": "dev", "selection": [c[0] for c in CASES], "sampling": dict(IDENT.sampling),
         "options": dict(IDENT.options), "planned": len(CASES), "location": "azure:Standard_NC6s_v3",
         "instances": 1}
    m.update(kw)
    return m


def _write(folder, cases=CASES, **kw):
    w = RF.RunFolderWriter(folder, _manifest(**kw))
    for vid, _, v, c in cases:
        w.add(RF.make_record(vid, "ab" * 32, v, c))
    w.close("done", {"processed": len(cases)})
    return w


_RUN_KEYS = {"run_id", "name", "created_at", "finished_at", "status", "notes", "job_id", "output_dir"}


def _comparable(m):
    from reports.metrics import _RUN_COLS

    return {k: v for k, v in m.items() if k not in _RUN_KEYS and k not in _RUN_COLS}


def test_written_read_back_and_ingested_equals_a_direct_run(store, tmp_path):
    _labels(store)
    folder = tmp_path / "out"
    _write(folder)

    manifest, records = RF.read_run_folder(folder)
    assert manifest["status"] == "done" and manifest["finished_at"] and manifest["summary"] == {"processed": 6}
    assert manifest["identity"] == IDENT.to_dict() and manifest["tool_version"]
    assert [r["video_id"] for r in records] == [c[0] for c in CASES]
    first = records[0]
    assert first["response"] == "是，鬼探头" and first["ghost_probing"] is True and first["onset_s"] == 2.5
    assert first["latency_s"] == pytest.approx(1.7) and first["model_s"] == 1.5 and first["decode_s"] == 0.2
    assert records[3]["status"] == "unparsed" and records[3]["ghost_probing"] is None  # never a "no"
    assert records[5]["status"] == "error" and records[5]["error"] == "The engine ran out of memory."

    run_id = RF.ingest(store, folder)
    run = R.get_run(store, run_id)
    assert run["engine"] == "transformers" and run["model"] == "tiny/random-qwen2-vl" and run["label_set"] == "dev"
    assert run["prompt_id"] == "ghost_probing" and run["prompt_version"] == "3" and run["prompt_hash"] == "f" * 64
    assert run["identity_hash"] == IDENT.digest() and run["planned"] == 6 and run["status"] == "imported"

    # the same predictions written directly as a run
    direct = R.create_run(store, engine="transformers", model="tiny/random-qwen2-vl", revision="abc123",
                          prompt=("ghost_probing", "3", "f" * 64), options=dict(IDENT.options),
                          sampling=dict(IDENT.sampling), label_set="dev", selection=[c[0] for c in CASES],
                          location="azure:Standard_NC6s_v3", engine_kind="chat", identity=IDENT)
    for vid, _, v, c in CASES:
        R.add_prediction(store, direct, vid, "ab" * 32, v, c)
    R.finish_run(store, direct)
    for policy in ("counted_wrong", "excluded"):
        got, want = M.run_metrics(store, run_id, policy), M.run_metrics(store, direct, policy)
        assert _comparable(got) == _comparable(want)
    a = {r["video_id"]: r for r in R.predictions(store, run_id)}
    b = {r["video_id"]: r for r in R.predictions(store, direct)}
    cols = ("ghost_probing", "confidence", "danger_level", "object_type", "onset_s", "reason", "status", "raw",
            "latency_s", "decode_s", "model_s", "prompt_tokens", "completion_tokens", "correct")
    assert {v: {k: r[k] for k in cols} for v, r in a.items()} == {v: {k: r[k] for k in cols} for v, r in b.items()}
    kinds = store.query("SELECT DISTINCT kind FROM responses WHERE run_id = ?", [run_id])
    assert kinds == [{"kind": "import"}]


def test_ingesting_twice_does_not_duplicate_and_a_grown_folder_adds_only_the_new(store, tmp_path):
    _labels(store)
    folder = tmp_path / "out"
    _write(folder, cases=CASES[:4])
    rid = RF.ingest(store, folder, job_id="azureml:gp-eval-1")
    assert RF.ingest(store, folder) == rid
    assert store.scalar("SELECT count(*) FROM responses WHERE run_id = ?", [rid]) == 4
    assert store.scalar("SELECT count(*) FROM runs") == 1
    assert R.get_run(store, rid)["job_id"] == "azureml:gp-eval-1"

    # the job wrote two more videos and retried one (a mini-batch appended again: last line wins)
    w = RF.RunFolderWriter(folder, _manifest())
    for vid, _, v, c in CASES[4:]:
        w.add(RF.make_record(vid, "ab" * 32, v, c))
    w.add(RF.make_record(CASES[3][0], "ab" * 32, Verdict(False, 0.55, "low", None, None, "ok now", "ok", "否"),
                         CASES[3][3]))
    w.close("done")
    assert RF.ingest(store, folder) == rid
    assert store.scalar("SELECT count(*) FROM predictions WHERE run_id = ?", [rid]) == 6
    # the replaced answer is kept in the log, not current
    assert store.scalar("SELECT count(*) FROM responses WHERE run_id = ?", [rid]) == 7
    row = store.query("SELECT status, raw FROM predictions WHERE run_id = ? AND video_id = ?", [rid, CASES[3][0]])
    assert row == [{"status": "ok", "raw": "否"}]
    assert RF.ingest(store, folder) == rid
    assert store.scalar("SELECT count(*) FROM responses WHERE run_id = ?", [rid]) == 7


@pytest.mark.parametrize("line, why", [
    ("{not json", "line 3 is not valid JSON"),
    ('{"video_id": "x.avi", "status": "maybe"}', "line 3 has status \"maybe\", not one of ok, unparsed, error"),
    ('{"video_id": "x.avi", "status": "unparsed", "ghost_probing": false}',
     "line 3 answers ghost_probing although its status is unparsed"),
    ('{"video_id": "x.avi", "status": "ok", "ghost_probing": true, "confidence": 1.7}',
     "line 3 has a confidence outside 0..1"),
    ('{"status": "ok"}', "line 3 has no video_id"),
    ('[1, 2]', "line 3 is not a JSON object"),
])
def test_a_bad_line_is_one_sentence_with_its_number_and_nothing_is_written(store, tmp_path, line, why):
    folder = tmp_path / "out"
    _write(folder, cases=CASES[:4])
    lines = (folder / RF.PREDICTIONS).read_text(encoding="utf-8").splitlines()
    lines[2] = line
    (folder / RF.PREDICTIONS).write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RF.RunFolderError) as e:
        RF.ingest(store, folder)
    msg = str(e.value)
    assert why in msg and msg.startswith("predictions.jsonl ") and msg.endswith(".") and "\n" not in msg
    assert store.scalar("SELECT count(*) FROM runs") == 0
    assert store.scalar("SELECT count(*) FROM responses") == 0


def test_torn_last_line_and_bad_manifests(tmp_path, store):
    folder = tmp_path / "out"
    _write(folder, cases=CASES[:2])
    with open(folder / RF.PREDICTIONS, "a", encoding="utf-8") as f:
        f.write('{"video_id": "images_1_003.avi", "sta')
    with pytest.raises(RF.RunFolderError, match=r"^predictions.jsonl line 3 is cut short"):
        RF.read_run_folder(folder)

    with pytest.raises(RF.RunFolderError, match="has no manifest.json"):
        RF.read_run_folder(tmp_path)
    with pytest.raises(RF.RunFolderError, match="does not exist"):
        RF.read_run_folder(tmp_path / "nope")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / RF.MANIFEST).write_text('{"run_id": "r1", "status": "done"}')
    with pytest.raises(RF.RunFolderError, match=r"manifest.json has no engine identity \(identity.engine\)\.$"):
        RF.read_run_folder(bad)
    (bad / RF.MANIFEST).write_text(json.dumps({**_manifest(), "status": "done", "format_version": 99}))
    with pytest.raises(RF.RunFolderError, match="newer than this GhostProbe reads"):
        RF.read_run_folder(bad)


def test_writer_refuses_another_runs_folder_reopens_its_own_and_is_thread_safe(tmp_path):
    folder = tmp_path / "out"
    _write(folder, cases=CASES[:1])
    with pytest.raises(RF.RunFolderError, match=r"already holds run r20261202-071800-ab12; choose an empty folder"):
        RF.RunFolderWriter(folder, _manifest(run_id="r20261202-090000-ffff"))
    # the same run reopens to append (a resumed run) and keeps its creation time
    created = RF.read_manifest(folder)["created_at"]
    w = RF.RunFolderWriter(folder, _manifest())
    assert RF.read_manifest(folder)["status"] == "running"
    records = [RF.make_record(f"v{i:03d}.avi", None, Verdict(True, 0.5, raw="是", status="ok"), None)
               for i in range(200)]
    threads = [threading.Thread(target=lambda part=records[i::8]: [w.add(r) for r in part]) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with pytest.raises(RF.RunFolderError, match="A prediction record has no video_id"):
        w.add({"status": "ok"})
    w.close("partial", {"processed": 200})
    m, recs = RF.read_run_folder(folder)
    assert m["created_at"] == created and m["status"] == "partial" and len(recs) == 201
    with pytest.raises(RF.RunFolderError, match="closed"):
        w.add(records[0])
    with pytest.raises(RF.RunFolderError, match="A finished run's status"):
        RF.RunFolderWriter(tmp_path / "o2", _manifest()).close("running")


def test_records_from_a_stored_run_round_trip(store, tmp_path):
    _labels(store)
    direct = R.create_run(store, engine="transformers", model="m", label_set="dev", selection=[c[0] for c in CASES])
    for vid, _, v, c in CASES:
        R.add_prediction(store, direct, vid, None, v, c)
    w = RF.RunFolderWriter(tmp_path / "o", _manifest(run_id=direct))
    for rec in RF.records_from_run(store, direct):
        w.add(rec)
    w.close("done")
    rid = RF.ingest(store, tmp_path / "o")
    assert _comparable(M.run_metrics(store, rid)) == _comparable(M.run_metrics(store, direct))


def test_cli_jobs_ingest(tmp_path, env_dirs):
    folder = tmp_path / "out"
    _write(folder)
    cmd = [sys.executable, "-m", "webapp.cli", "jobs", "ingest", str(folder), "--json"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["predictions"] == 6 and out["records"] == 6 and out["origin"] == "r20261202-071800-ab12"
    p2 = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert json.loads(p2.stdout)["run_id"] == out["run_id"]
    (folder / RF.PREDICTIONS).write_text("{oops\n")
    p3 = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p3.returncode == 2 and p3.stderr.strip() == (
        "ghostprobe: predictions.jsonl line 1 is not valid JSON (Expecting property name enclosed in double quotes).")


def test_eval_output_on_one_machine_ingested_on_another_equals_the_local_run(tmp_path):
    """The real CLI: `eval --output` with the baseline on generated clips into one database, `jobs ingest` of
    that folder into another: same metrics and predictions; twice → no duplicates."""
    import os

    from media import write_h264_mp4

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(4):
        write_h264_mp4(videos / f"clip_{i}.mp4", n_frames=30 + 8 * i)
    labels = tmp_path / "labels.csv"
    labels.write_text("video_id,ghost_probing\n" + "".join(f"clip_{i}.mp4,{i % 2}\n" for i in range(4)))
    env = {**os.environ, "GHOSTPROBE_DATA_DIR": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}

    def cli(db, *args):
        p = subprocess.run([sys.executable, "-m", "webapp.cli", "--db", str(db), *args], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        return p.stdout

    a, b, out = tmp_path / "a.duckdb", tmp_path / "b.duckdb", tmp_path / "run-folder"
    for db in (a, b):
        cli(db, "labels", "import", str(labels), "--set", "gen", "--format", "generic")
    local = json.loads(cli(a, "eval", "--engine", "baseline", "--labels", "gen", "--videos", str(videos),
                           "--workers", "1", "--output", str(out), "--json"))
    manifest, records = RF.read_run_folder(out)
    assert manifest["status"] == "done" and len(records) == 4 and manifest["label_set"] == "gen"
    ing = json.loads(cli(b, "jobs", "ingest", str(out), "--json"))
    assert json.loads(cli(b, "jobs", "ingest", str(out), "--json"))["run_id"] == ing["run_id"]

    from reports.store import Store

    sa, sb = Store(a), Store(b)
    try:
        ma, mb = M.run_metrics(sa, local["run_id"]), M.run_metrics(sb, ing["run_id"])
        assert _comparable(ma) == _comparable(mb) and mb["predictions"] == 4
        cols = "video_id, sha256, ghost_probing, confidence, status, raw, latency_s, decode_s, model_s"
        q = f"SELECT {cols} FROM predictions WHERE run_id = ? ORDER BY video_id"
        assert sa.query(q, [local["run_id"]]) == sb.query(q, [ing["run_id"]])
        assert sb.scalar("SELECT count(*) FROM responses WHERE run_id = ?", [ing["run_id"]]) == 4
    finally:
        sa.close()
        sb.close()
