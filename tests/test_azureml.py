"""Azure ML jobs through azure-ai-ml's real MLClient, its HTTP answered by a loopback HTTPS fake workspace
(tests/azureml_fake.py): the submitted job (command, code, environment, compute, instance count,
parallel settings, outputs) as it went over the wire, and the refresh state machine with times and cost.
The worker itself runs for real on generated clips with the baseline engine."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from datetime import datetime

import pytest

pytest.importorskip("azure.ai.ml")

from azureml_fake import FakeAzureML, FakeCredential  # noqa: E402

from engines.base import BatchPlan  # noqa: E402
from engines.cloud import azureml as A  # noqa: E402
from engines.cloud import service as S  # noqa: E402
from reports import jobs as J  # noqa: E402
from reports import run_folder as RF  # noqa: E402

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
SUB = "00000000-0000-0000-0000-000000000000"
VIDEOS = "azureml://datastores/workspaceblobstore/paths/dada-dev/"


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    with FakeAzureML(tmp_path_factory.mktemp("azureml")) as f:
        yield f


@pytest.fixture
def client(fake, monkeypatch):
    monkeypatch.setenv("AZUREML_DEV_URL_MFE", fake.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.cert))
    from azure.ai.ml import MLClient

    return MLClient(FakeCredential(), SUB, "rg-ghost", "ws-ghost", show_progress=False)


def _settings(**kw):
    base = dict(subscription_id=SUB, resource_group="rg-ghost", workspace="ws-ghost", compute="gpu-v100x4",
                instance_type="Standard_NC24s_v3", videos=VIDEOS)
    base.update(kw)
    return A.AzureMLSettings(**base)


def _labels(store, ids, name="dev"):
    with store.write() as cur:
        cur.execute("INSERT INTO label_sets (name, source) VALUES (?, 'test')", [name])
        for i, vid in enumerate(ids):
            cur.execute("INSERT INTO labels (label_set, video_id, ghost_probing, kind) VALUES (?, ?, ?, ?)",
                        [name, vid, i % 2 == 0, "ghost_probing" if i % 2 == 0 else "none"])


def _plan(store, ids=("images_1_001.avi", "images_1_002.avi", "images_1_003.avi")):
    _labels(store, ids)
    return S.build_plan(store, engine="baseline", label_set="dev", settings={"note": "test"})


def _by_path(fake, suffix):
    return [r for r in fake.requests if r["path"].endswith(suffix)]


def test_command_job_as_submitted_over_the_wire(store, fake, client):
    plan = _plan(store)
    backend = A.AzureMLBackend(_settings(), ml_client=client)
    ref = backend.submit(plan, store=store)
    name = A.job_name(plan)
    assert ref.job_id == f"azureml:{name}" and ref.url.startswith(f"https://ml.azure.com/runs/{name}")

    body = [b for b in fake.job_puts() if b["properties"].get("displayName", "").startswith(f"GhostProbe eval {plan.run_id}")][-1]
    p = body["properties"]
    assert p["jobType"] == "Command" and p["experimentName"] == "ghostprobe"
    assert p["command"] == ("python -m engines.cloud.worker --plan job/plan.json --videos ${{inputs.videos}} "
                            "--output ${{outputs.results}}")
    assert p["computeId"].endswith("/workspaces/ws-ghost/computes/gpu-v100x4")
    assert p["resources"]["instanceCount"] == 1
    assert p["inputs"]["videos"] == {"uri": VIDEOS, "mode": "ReadOnlyMount", "jobInputType": "uri_folder"}
    assert p["outputs"]["results"]["jobOutputType"] == "uri_folder"
    assert p["tags"]["ghostprobe_run"] == plan.run_id and p["tags"]["engine"] == "baseline"

    # the environment: the curated GPU base image + the project's own requirements
    env_put = [r for r in fake.requests if r["method"] == "PUT" and "/environments/" in r["path"]][-1]
    assert p["environmentId"].endswith(env_put["path"].split("/workspaces/ws-ghost")[1])
    env = json.loads(env_put["body"])["properties"]
    assert env["image"] == A.DEFAULT_IMAGE
    conda = env["condaFile"]
    assert "python=3.11" in conda and "transformers>=5,<6" in conda and "duckdb>=1.4" in conda

    # the code: the project snapshot with the plan, uploaded through the pending-upload blob
    code_put = [r for r in fake.requests if r["method"] == "PUT" and "/codes/" in r["path"]][-1]
    assert p["codeId"].endswith(code_put["path"].split("/workspaces/ws-ghost")[1])
    blob_root = json.loads(code_put["body"])["properties"]["codeUri"].split("127.0.0.1")[1].split(":", 1)[1]
    blob_root = "/" + blob_root.split("/", 1)[1]
    files = {k[len(blob_root):].lstrip("/"): v for k, v in fake.blobs.items() if k.startswith(blob_root)}
    assert json.loads(files["job/plan.json"]) == json.loads(json.dumps(asdict(plan), default=str))
    for f in ("engines/cloud/worker.py", "engines/cloud/azureml_parallel.py", "webapp/predict.py",
              "reports/run_folder.py", "pyproject.toml"):
        assert f in files, f
    assert not [f for f in files if f.startswith(("data/", ".venv")) or "__pycache__" in f or f.startswith("tests/")]
    # the token went as a bearer over TLS; the credential was asked for the ARM and AML scopes only
    assert any(h.startswith("Bearer ") for h in fake.auth_headers)

    job = J.get_job(store, ref.job_id)
    assert job["state"] == "queued" and job["provider_state"] == "NotStarted" and job["kind"] == "job"
    assert job["compute"] == "gpu-v100x4" and job["instance_count"] == 1
    assert job["location"] == "azure:Standard_NC24s_v3"
    assert job["spec"]["plan"]["run_id"] == plan.run_id and job["spec"]["parallel"] is False
    assert job["spec"]["job"]["component"]["command"].startswith("python -m engines.cloud.worker")


def test_parallel_job_sharded_over_nodes(store, fake, client):
    plan = _plan(store, tuple(f"images_2_{i:03d}.avi" for i in range(10)))
    s = _settings(parallel=4, mini_batch_size=2, max_retries=3, task_timeout_s=1800)
    ref = A.AzureMLBackend(s, ml_client=client).submit(plan, store=store)
    body = fake.jobs[ref.job_id.split(":", 1)[1]]["properties"]
    assert body["jobType"] == "Pipeline"
    assert body["settings"]["default_compute"].endswith("/computes/gpu-v100x4")
    assert body["inputs"]["videos"]["uri"] == VIDEOS
    step = body["jobs"]["ghostprobe_eval_shard"]
    assert step["type"] == "parallel"
    assert step["resources"]["instance_count"] == 4
    assert step["mini_batch_size"] == 2 and step["max_concurrency_per_instance"] == 1
    assert step["retry_settings"] == {"timeout": 1800, "max_retries": 3}
    assert step["input_data"] == "${{inputs.videos}}"
    assert step["mini_batch_error_threshold"] == -1
    task = step["task"]
    assert task["type"] == "run_function" and task["entry_script"] == "engines/cloud/azureml_parallel.py"
    assert task["append_row_to"] == "${{outputs.results}}" and task["program_arguments"] == "--plan job/plan.json"
    assert "/codes/" in task["code"] and "/environments/" in task["environment"]
    assert step["outputs"]["results"]["value"] == "${{parent.outputs.results}}"
    job = J.get_job(store, ref.job_id)
    assert job["instance_count"] == 4 and job["spec"]["parallel"] is True


def test_refresh_state_machine_with_times_and_cost(store, fake, client):
    plan = _plan(store)
    backend = A.AzureMLBackend(_settings(parallel=2), ml_client=client)
    ref = backend.submit(plan, store=store)
    name = ref.job_id.split(":", 1)[1]

    fake.set_status(name, "Queued")
    r = S.refresh(store, ref.job_id, backend, ingest=False)
    assert r["state"] == "queued" and r["entered"] == [] and r["cost_usd"] == 0.0
    fake.set_status(name, "Running", StartTimeUtc="2026-12-02T07:10:00Z")
    r = S.refresh(store, ref.job_id, backend, ingest=False)
    assert r["entered"] == ["running"]
    assert J.get_job(store, ref.job_id)["started_at"] == datetime(2026, 12, 2, 7, 10)
    fake.set_status(name, "Finalizing")
    assert S.refresh(store, ref.job_id, backend, ingest=False)["entered"] == []
    fake.set_status(name, "Completed", EndTimeUtc="2026-12-02T07:40:00Z")
    r = S.refresh(store, ref.job_id, backend, ingest=False)
    assert r["state"] == "completed" and r["entered"] == ["completed"]
    job = J.get_job(store, ref.job_id)
    assert job["provider_state"] == "Completed" and job["ended_at"] == datetime(2026, 12, 2, 7, 40)
    ev = [(e["state"], e["at"]) for e in J.events(store, ref.job_id)]
    assert [s for s, _ in ev] == ["queued", "running", "completed"]
    assert ev[1][1] == datetime(2026, 12, 2, 7, 10) and ev[2][1] == datetime(2026, 12, 2, 7, 40)
    # 0.5 h × 2 nodes × $12.24/h
    assert job["cost_usd"] == pytest.approx(0.5 * 2 * 12.24)


def test_failed_and_canceled_jobs(store, fake, client):
    backend = A.AzureMLBackend(_settings(), ml_client=client)
    plan = _plan(store)
    ref = backend.submit(plan, store=store)
    name = ref.job_id.split(":", 1)[1]
    fake.set_status(name, "Running")
    S.refresh(store, ref.job_id, backend, ingest=False)
    fake.set_status(name, "Failed")
    r = S.refresh(store, ref.job_id, backend)
    assert r["state"] == "failed" and r["run_id"] is None
    with pytest.raises(J.JobError, match="is already failed; there is nothing to cancel"):
        S.cancel(store, ref.job_id, backend)

    plan2 = BatchPlan(**{**asdict(plan), "run_id": plan.run_id + "-b"})
    ref2 = backend.submit(plan2, store=store)
    fake.set_status(ref2.job_id.split(":", 1)[1], "Running")
    S.refresh(store, ref2.job_id, backend)
    r = S.cancel(store, ref2.job_id, backend)
    cancels = _by_path(fake, f"/jobs/{ref2.job_id.split(':', 1)[1]}/cancel")
    assert len(cancels) == 1 and cancels[0]["method"] == "POST"
    assert r["state"] == "canceled" and J.get_job(store, ref2.job_id)["ended_at"] is not None
    assert [e["state"] for e in J.events(store, ref2.job_id)] == ["queued", "running", "canceled"]


def test_unknown_job_and_missing_configuration_are_one_sentence(client, monkeypatch):
    backend = A.AzureMLBackend(_settings(), ml_client=client)
    with pytest.raises(A.EngineError) as e:
        backend.poll("azureml:no-such-job")
    assert str(e.value).startswith("Azure ML could not read job no-such-job: not found (HTTP 404)")
    for k in ("GHOSTPROBE_AZUREML_SUBSCRIPTION", "GHOSTPROBE_AZUREML_RESOURCE_GROUP", "GHOSTPROBE_AZUREML_WORKSPACE",
              "AZUREML_CONFIG"):
        monkeypatch.delenv(k, raising=False)
    ok, why = A.availability()
    assert not ok and why.startswith("Azure ML is not configured: set GHOSTPROBE_AZUREML_SUBSCRIPTION, "
                                     "GHOSTPROBE_AZUREML_RESOURCE_GROUP, GHOSTPROBE_AZUREML_WORKSPACE")
    with pytest.raises(A.EngineError, match="^Azure ML is not configured"):
        A.AzureMLBackend(A.AzureMLSettings()).client()
    with pytest.raises(A.EngineError, match="Say where the videos are in Azure"):
        A.build_job(BatchPlan("r1", {"engine": "baseline"}, None, [], {}, {}), _settings(videos=None), ROOT)


# -- the worker, for real ---------------------------------------------------------------------------
@pytest.fixture
def clips(tmp_path):
    from media import write_h264_mp4

    d = tmp_path / "videos"
    d.mkdir()
    for i in range(3):
        write_h264_mp4(d / f"clip_{i}.mp4", n_frames=30 + 10 * i)
    return d


def test_worker_and_parallel_entry_write_what_ingest_reads(store, clips, tmp_path, monkeypatch):
    ids = sorted(p.name for p in clips.iterdir())
    _labels(store, ids)
    plan = S.build_plan(store, engine="baseline", label_set="dev")
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(asdict(plan)))
    out = tmp_path / "results"
    p = subprocess.run([sys.executable, "-m", "engines.cloud.worker", "--plan", str(plan_file), "--videos", str(clips),
                        "--output", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    manifest, records = RF.read_run_folder(out)
    assert manifest["status"] == "done" and manifest["run_id"] == plan.run_id and manifest["planned"] == 3
    assert [r["video_id"] for r in records] == ids
    assert all(r["status"] in ("ok", "unparsed") and r["latency_s"] > 0 and r["decode_s"] is not None
               for r in records)
    # a restarted job skips what it already answered
    p = subprocess.run([sys.executable, "-m", "engines.cloud.worker", "--plan", str(plan_file), "--videos", str(clips),
                        "--output", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and json.loads(p.stdout.strip().splitlines()[-1])["summary"]["skipped_done"] == 3

    # the parallel entry script: init() once, run() per mini-batch, rows appended by Azure ML
    from engines.cloud import azureml_parallel as P

    monkeypatch.setenv("GHOSTPROBE_PLAN", str(plan_file))
    monkeypatch.setattr(sys, "argv", ["azureml_parallel.py"])
    P.init()
    rows = P.run([str(clips / ids[0]), str(clips / ids[1])]) + P.run([str(clips / ids[2])])
    dl = tmp_path / "download" / "named-outputs" / "results"
    dl.mkdir(parents=True)
    (dl / "parallel_run_step.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    folder = A.assemble_run_folder(tmp_path / "download", asdict(plan), job_id="azureml:gp-eval-x",
                                   location="azure:Standard_NC24s_v3")
    m2, rec2 = RF.read_run_folder(folder)
    assert m2["job_id"] == "azureml:gp-eval-x" and m2["status"] == "done"
    strip = ("latency_s", "decode_s", "preprocess_s", "generate_s", "model_s", "extra")
    assert [{k: v for k, v in r.items() if k not in strip} for r in rec2] == \
        [{k: v for k, v in r.items() if k not in strip} for r in records]  # same answers from both paths
    rid1 = RF.ingest(store, out)
    rid2 = RF.ingest(store, folder, job_id="azureml:gp-eval-x")
    a = store.query("SELECT video_id, status, ghost_probing, confidence FROM predictions WHERE run_id = ? "
                    "ORDER BY 1", [rid1])
    b = store.query("SELECT video_id, status, ghost_probing, confidence FROM predictions WHERE run_id = ? "
                    "ORDER BY 1", [rid2])
    assert a == b and len(a) == 3


def test_prompt_text_round_trips_to_the_same_hash():
    from prompts import PromptLibrary, load_template

    import tempfile
    from pathlib import Path

    t = PromptLibrary.load(strict=False).detect_default()
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "p.yaml"
        f.write_text(t.to_yaml(), encoding="utf-8")
        assert load_template(f).hash == t.hash


def test_dry_run_prints_the_spec_without_contacting_azure(tmp_path, env_dirs, monkeypatch):
    for k, v in {"GHOSTPROBE_AZUREML_SUBSCRIPTION": SUB, "GHOSTPROBE_AZUREML_RESOURCE_GROUP": "rg",
                 "GHOSTPROBE_AZUREML_WORKSPACE": "ws"}.items():
        monkeypatch.setenv(k, v)
    csv = tmp_path / "labels.csv"
    csv.write_text("video_id,ghost_probing\nimages_1_001.avi,1\nimages_1_002.avi,0\n")
    env = {**__import__("os").environ}
    r = subprocess.run([sys.executable, "-m", "webapp.cli", "labels", "import", str(csv), "--set", "dev",
                        "--format", "generic"], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    cmd = [sys.executable, "-m", "webapp.cli", "jobs", "submit-eval", "--backend", "azureml", "--engine", "baseline",
           "--labels", "dev", "--videos-uri", VIDEOS, "--parallel", "3", "--compute", "gpu-v100x4",
           "--instance-type", "Standard_NC24s_v3", "--dry-run", "--json"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    step = out["job"]["jobs"]["ghostprobe_eval_shard"]
    assert step["resources"]["instance_count"] == 3 and step["task"]["entry_script"] == A.PARALLEL_ENTRY
    assert [v["video_id"] for v in out["plan"]["videos"]] == ["images_1_001.avi", "images_1_002.avi"]
    assert out["submitted"] is False
    r = subprocess.run(cmd[:-2], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**env, "GHOSTPROBE_AZUREML_WORKSPACE": ""})
    assert r.returncode == 2 and r.stderr.startswith("ghostprobe: Azure ML is not configured: set GHOSTPROBE_AZUREML_WORKSPACE")


def test_online_endpoint_spec_runs_the_scoring_script(tmp_path, env_dirs, capsys):
    from webapp.cli import main

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    assert main(["endpoints", "deploy", "--backend", "azureml", "--name", "gp-vlm", "--instance-type",
                 "Standard_NC24s_v3", "--instance-count", "2", "--model-path", str(model), "--engine", "videollama2",
                 "--engine-env", "GHOSTPROBE_HF_DTYPE=float16", "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ep, dep = out["endpoint"], out["deployment"]
    assert ep["name"] == "gp-vlm" and ep["auth_mode"] == "key"
    assert dep["endpoint_name"] == "gp-vlm" and dep["instance_type"] == "Standard_NC24s_v3"
    assert dep["instance_count"] == 2
    assert dep["code_configuration"]["scoring_script"] == "engines/cloud/azureml_score.py"
    assert dep["environment_variables"] == {"GHOSTPROBE_SCORE_ENGINE": "videollama2", "HF_HUB_OFFLINE": "1",
                                            "GHOSTPROBE_HF_DTYPE": "float16"}
    pip = dep["environment"]["conda_file"]["dependencies"][-1]["pip"]
    assert "azureml-inference-server-http>=1.4" in pip and "transformers>=5,<6" in pip
    assert dep["environment"]["image"] == A.DEFAULT_IMAGE


# -- a completed job's outputs, downloaded over HTTP and ingested (the real CLI) ---------------------
def _cli_env(fake, tmp_path, **extra):
    """The CLI as a user runs it after `az login`: DefaultAzureCredential (its Azure CLI link, answered by
    tests/azureml_fake.fake_az_cli), the workspace from the environment, the management front end on the
    loopback fake, and the datastore's storage account name reached through the loopback CONNECT proxy."""
    import os

    from azureml_fake import fake_az_cli

    az = fake_az_cli(tmp_path / "az-bin")
    env = {**os.environ, "GHOSTPROBE_DATA_DIR": str(tmp_path / "data"), "OMP_NUM_THREADS": "1",
           "PATH": f"{az}{os.pathsep}{os.environ.get('PATH', '')}", "AZURE_TOKEN_CREDENTIALS": "AzureCliCredential",
           "AZUREML_DEV_URL_MFE": fake.url, "REQUESTS_CA_BUNDLE": str(fake.cert),
           "HTTPS_PROXY": fake.proxy.url, "NO_PROXY": "127.0.0.1", "GHOSTPROBE_AZUREML_SUBSCRIPTION": SUB,
           "GHOSTPROBE_AZUREML_RESOURCE_GROUP": "rg-ghost", "GHOSTPROBE_AZUREML_WORKSPACE": "ws-ghost",
           "GHOSTPROBE_AZUREML_COMPUTE": "gpu-v100x4", "GHOSTPROBE_AZUREML_SKU": "Standard_NC24s_v3",
           "GHOSTPROBE_AZUREML_VIDEOS": VIDEOS, **extra}
    for k in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZUREML_CONFIG", "http_proxy",
              "https_proxy", "no_proxy"):
        env.pop(k, None)
    return env, az / "az-calls.log"


def _run_cli(env, db, *args, code=0):
    p = subprocess.run([sys.executable, "-m", "webapp.cli", "--db", str(db), *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == code, (p.stdout[-1500:], p.stderr[-3000:])
    return p


def test_completed_job_downloaded_over_http_and_ingested_once(fake, tmp_path):
    """`eval --output` writes a run folder on one machine (the job's worker); the fake workspace serves it
    as the job's `results` output in its blob store; `jobs refresh` on the studio's machine sees the job
    complete, and azure-ai-ml's own `jobs.download` resolves the output (run history → data plane →
    datastore + its SAS) and reads the blobs from the storage account; the folder is ingested as a run
    linked to the job, with metrics and predictions equal to the local run's, and never twice."""
    from media import write_h264_mp4
    from reports.store import Store
    from test_run_folder import _comparable
    from azureml_fake import CONTAINER, SAS, STORAGE_HOST

    from reports import metrics as M

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(4):
        write_h264_mp4(videos / f"clip_{i}.mp4", n_frames=30 + 8 * i)
    labels = tmp_path / "labels.csv"
    labels.write_text("video_id,ghost_probing\n" + "".join(f"clip_{i}.mp4,{i % 2}\n" for i in range(4)))
    env, az_log = _cli_env(fake, tmp_path)
    worker_db, studio_db, out = tmp_path / "worker.duckdb", tmp_path / "studio.duckdb", tmp_path / "run-folder"
    for db in (worker_db, studio_db):
        _run_cli(env, db, "labels", "import", str(labels), "--set", "gen", "--format", "generic")
    local = json.loads(_run_cli(env, worker_db, "eval", "--engine", "baseline", "--labels", "gen", "--videos",
                                str(videos), "--workers", "1", "--output", str(out), "--json").stdout)

    sub = json.loads(_run_cli(env, studio_db, "jobs", "submit-eval", "--backend", "azureml", "--engine", "baseline",
                              "--labels", "gen", "--json").stdout)
    job_id, name = sub["job_id"], sub["job_id"].split(":", 1)[1]
    assert sub["submitted"] is True and sub["videos"] == 4 and name in fake.jobs
    assert az_log.read_text().count("account get-access-token") >= 1  # DefaultAzureCredential signed the calls

    fake.set_status(name, "Running", StartTimeUtc="2026-12-02T07:10:00Z")
    r = json.loads(_run_cli(env, studio_db, "jobs", "refresh", job_id, "--json").stdout)
    assert r["state"] == "running" and r["run_id"] is None
    assert not fake.storage_requests()  # nothing is downloaded before the job is done

    prefix = fake.complete_with_outputs(name, out, EndTimeUtc="2026-12-02T07:40:00Z")
    p = _run_cli(env, studio_db, "jobs", "refresh", job_id, "--json")
    r = json.loads(p.stdout)
    assert r["state"] == "completed" and r["entered"] == ["completed"] and r["ingest_error"] is None, r
    run_id = r["run_id"]
    assert run_id and r["cost_usd"] == pytest.approx(0.5 * 1 * 12.24)

    # what went over the wire: the output resolved through the run history and data planes, the
    # datastore read and its expirable secret listed, then blob list + GETs on the storage account's own
    # name (tunnelled to loopback), signed with that SAS, for exactly the files the worker wrote
    paths = [(q["method"], q["path"]) for q in fake.requests]
    assert any(m == "POST" and pth.startswith("/history/v1.0/") and pth.endswith("/rundata") for m, pth in paths)
    assert any(m == "POST" and pth.endswith("/dataversion/batchGetResolvedUris") for m, pth in paths)
    assert any(m == "POST" and pth.endswith("/datastores/workspaceblobstore/listSecrets") for m, pth in paths)
    st = fake.storage_requests()
    assert set(fake.proxy.hosts) == {f"{STORAGE_HOST}:443"}
    assert st[0]["query"]["comp"] == ["list"] and st[0]["query"]["prefix"] == [prefix + "/"]
    got = sorted(q["path"].split(f"/{CONTAINER}/{prefix}/", 1)[1] for q in st[1:])
    assert got == sorted(f.relative_to(out).as_posix() for f in out.rglob("*") if f.is_file())
    assert all(q["query"]["sig"] == ["fakeSasSignature"] and "Authorization" not in q["headers"] for q in st)
    assert "fakeSasSignature" not in p.stdout + p.stderr and SAS not in p.stdout + p.stderr

    # the same run as the local one, linked to the job
    sa, sb = Store(worker_db), Store(studio_db)
    try:
        assert sb.scalar("SELECT job_id FROM runs WHERE run_id = ?", [run_id]) == job_id
        assert sb.scalar("SELECT run_id FROM jobs WHERE job_id = ?", [job_id]) == run_id
        ma, mb = M.run_metrics(sa, local["run_id"]), M.run_metrics(sb, run_id)
        assert _comparable(ma) == _comparable(mb) and mb["predictions"] == 4
        cols = "video_id, sha256, ghost_probing, confidence, status, raw, latency_s, decode_s, model_s"
        q = f"SELECT {cols} FROM predictions WHERE run_id = ? ORDER BY video_id"
        assert sa.query(q, [local["run_id"]]) == sb.query(q, [run_id])
    finally:
        sa.close()
        sb.close()

    # twice → no duplicate: refresh leaves an ingested job alone; `jobs ingest JOB` downloads again and
    # finds every record already there
    n_storage = len(fake.storage_requests())
    again = json.loads(_run_cli(env, studio_db, "jobs", "refresh", job_id, "--json").stdout)
    assert again["run_id"] == run_id and again["entered"] == [] and len(fake.storage_requests()) == n_storage
    ing = json.loads(_run_cli(env, studio_db, "jobs", "ingest", job_id, "--json").stdout)
    assert ing == {"run_id": run_id, "job_id": job_id} and len(fake.storage_requests()) > n_storage
    sb = Store(studio_db)
    try:
        assert sb.scalar("SELECT count(*) FROM runs WHERE job_id = ?", [job_id]) == 1
        assert sb.scalar("SELECT count(*) FROM predictions WHERE run_id = ?", [run_id]) == 4
        assert sb.scalar("SELECT count(*) FROM responses WHERE run_id = ?", [run_id]) == 4
    finally:
        sb.close()


# -- managed online endpoint: deploy and delete over HTTP (the real CLI) ------------------------------
def _puts(fake, suffix):
    return [json.loads(r["body"]) for r in fake.requests if r["method"] == "PUT" and r["path"].endswith(suffix)]


def test_online_endpoint_deployed_and_deleted_over_http(fake, tmp_path):
    """`endpoints deploy --backend azureml` through azure-ai-ml's begin_create_or_update for the endpoint and
    the deployment (ARM long-running operations polled to Succeeded), the scoring code, environment and
    model uploaded, traffic routed; the endpoint in the jobs store and the Jobs tab as in service since its
    deployment was created, cost from that time × instances × the catalogue price; `endpoints delete`
    polls the delete to the end and stops the clock."""
    from datetime import timedelta, timezone

    from reports.store import Store
    from webapp.tabs.jobs import jobs_table_html

    env, az_log = _cli_env(fake, tmp_path)
    db = tmp_path / "studio.duckdb"
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "videollama2"}')
    created = datetime.now(timezone.utc) - timedelta(hours=1)
    fake.created_at = created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    n0 = len(fake.requests)
    p = _run_cli(env, db, "endpoints", "deploy", "--backend", "azureml", "--name", "gp-vlm-http", "--instance-type",
                 "Standard_NC24s_v3", "--instance-count", "2", "--model-path", str(model), "--engine", "videollama2",
                 "--engine-env", "GHOSTPROBE_HF_DTYPE=float16", "--json")
    out = json.loads(p.stdout)
    assert out["submitted"] is True and out["job_id"] == "azureml-endpoint:gp-vlm-http" and out["state"] == "running"
    assert out["traffic"] == {"blue": 100}
    assert out["scoring_uri"] == "https://gp-vlm-http.eastus.inference.ml.azure.com/score"
    assert az_log.exists()
    reqs = fake.requests[n0:]

    # the endpoint: key auth; created, then updated with all traffic on the deployment
    ep_puts = _puts(fake, "/onlineEndpoints/gp-vlm-http")
    assert [b["properties"]["authMode"] for b in ep_puts] == ["Key", "Key"]
    assert ep_puts[0]["properties"].get("traffic") in (None, {}) and ep_puts[1]["properties"]["traffic"] == {"blue": 100}
    # the deployment: scoring script in the uploaded code, the environment, the instance type and count
    dep = _puts(fake, "/onlineEndpoints/gp-vlm-http/deployments/blue")[-1]
    d = dep["properties"]
    assert d["codeConfiguration"]["scoringScript"] == "engines/cloud/azureml_score.py"
    assert d["instanceType"] == "Standard_NC24s_v3" and dep["sku"]["capacity"] == 2
    assert d["endpointComputeType"] == "Managed"
    assert d["environmentVariables"] == {"GHOSTPROBE_SCORE_ENGINE": "videollama2", "HF_HUB_OFFLINE": "1",
                                         "GHOSTPROBE_HF_DTYPE": "float16"}
    assert d["requestSettings"]["maxConcurrentRequestsPerInstance"] == 1
    env_put = [r for r in reqs if r["method"] == "PUT" and "/environments/" in r["path"]][-1]
    assert d["environmentId"].endswith(env_put["path"].split("/workspaces/ws-ghost")[1])
    envp = json.loads(env_put["body"])["properties"]
    assert envp["image"] == A.DEFAULT_IMAGE and "azureml-inference-server-http>=1.4" in envp["condaFile"]
    code_put = [r for r in reqs if r["method"] == "PUT" and "/codes/" in r["path"]][-1]
    assert d["codeConfiguration"]["codeId"].endswith(code_put["path"].split("/workspaces/ws-ghost")[1])
    code_uri = json.loads(code_put["body"])["properties"]["codeUri"]
    code_root = "/" + code_uri.split("127.0.0.1")[1].split("/", 1)[1]
    assert fake.blobs[code_root + "/engines/cloud/azureml_score.py"] == (ROOT / A.SCORING_SCRIPT).read_bytes()
    # the model: registered as a version, its files uploaded to the workspace's datastore account
    assert d["model"].endswith("/models/gp-vlm-http-model/versions/1")
    model_blobs = [r for r in reqs if r["host"] == "gpfakestore.blob.core.windows.net" and r["method"] == "PUT"
                   and r["path"].endswith("/model/config.json")]
    assert model_blobs and any(r["body"] == b'{"model_type": "videollama2"}' for r in model_blobs)
    # every create went through the long-running operation and was polled until it succeeded
    polls = [r for r in reqs if r["method"] == "GET" and "/operations/" in r["path"]]
    assert len({r["path"] for r in polls}) == 3 and len(polls) >= 6
    assert fake.endpoint_keys["primaryKey"] not in p.stdout + p.stderr

    # in the jobs store and the Jobs tab: in service since the deployment was created, 2 instances
    s = Store(db)
    try:
        job = J.get_job(s, out["job_id"])
        assert job["kind"] == "endpoint" and job["state"] == "running" and job["provider_state"] == "Succeeded"
        assert job["instance_count"] == 2 and job["location"] == "azure:Standard_NC24s_v3"
        assert job["started_at"] == created.replace(tzinfo=None)
        assert job["spec"]["scoring_uri"] == out["scoring_uri"] and job["spec"]["endpoint"]["auth_mode"] == "key"
        assert not [k for k in fake.endpoint_keys.values() if k in json.dumps(job["spec"])]
        assert job["cost_usd"] == pytest.approx(1.0 * 2 * 12.24, rel=0.02)  # ~1 h × 2 × $12.24/h
        html = jobs_table_html(s)
        row = html.split('data-job="azureml-endpoint:gp-vlm-http"', 1)[1].split("</tr>", 1)[0]
        assert "gp-state-running" in row and "Standard_NC24s_v3 × 2" in row and "$24." in row
    finally:
        s.close()
    listed = json.loads(_run_cli(env, db, "endpoints", "list", "--json").stdout)["endpoints"]
    assert [e["job_id"] for e in listed] == [out["job_id"]] and listed[0]["duration_s"] >= 3600

    # delete: the DELETE's long-running operation polled to the end, then the endpoint is gone
    p = _run_cli(env, db, "endpoints", "delete", "gp-vlm-http", "--backend", "azureml", "--json")
    r = json.loads(p.stdout)
    assert r["state"] == "deleted" and r["entered"] == ["deleted"]
    assert any(q["method"] == "DELETE" and q["path"].endswith("/onlineEndpoints/gp-vlm-http") for q in fake.requests)
    assert "gp-vlm-http" not in fake.endpoints
    s = Store(db)
    try:
        job = J.get_job(s, out["job_id"])
        assert job["ended_at"] is not None and [e["state"] for e in J.events(s, job["job_id"])] == \
            ["queued", "running", "deleted"]
        final = job["cost_usd"]
        assert final == pytest.approx((job["ended_at"] - job["started_at"]).total_seconds() / 3600 * 2 * 12.24)
    finally:
        s.close()
    # after deletion the clock has stopped: a later refresh changes nothing
    time_after = json.loads(_run_cli(env, db, "jobs", "show", out["job_id"], "--json").stdout)
    assert time_after["cost_usd"] == final and time_after["state"] == "deleted"
    p = _run_cli(env, db, "endpoints", "delete", "gp-vlm-http", "--backend", "azureml", code=2)
    assert p.stderr.strip() == ("ghostprobe: Job azureml-endpoint:gp-vlm-http is already deleted; there is nothing "
                                "to cancel.")


def test_parallel_job_rows_downloaded_over_http_and_a_job_without_outputs(store, fake, client, tmp_path,
                                                                          monkeypatch):
    """A parallel job's `results` output holds only the rows Azure ML's append_row wrote: downloaded over
    HTTP by `jobs.download`, given the manifest from the job's plan and ingested once, cost from the
    provider's times × nodes. A job that completed without writing its output is one sentence in the
    refresh and nothing is ingested."""
    monkeypatch.setenv("HTTPS_PROXY", fake.proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    plan = _plan(store)
    backend = A.AzureMLBackend(_settings(parallel=2), ml_client=client)
    ref = backend.submit(plan, store=store)
    name = ref.job_id.split(":", 1)[1]
    rows = [RF.make_record(v["video_id"], None,
                           {"status": "ok", "ghost_probing": i == 0, "confidence": 0.8 - 0.1 * i, "reason": "r",
                            "raw": '{"ghost_probing": %s}' % ("true" if i == 0 else "false")},
                           {"latency_s": 1.5 + i, "decode_s": 0.25, "device": "cuda:0"})
            for i, v in enumerate(plan.videos)]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in reversed(rows))  # tasks finish in any order
    out = tmp_path / "out"
    out.mkdir()
    (out / "parallel_run_step.txt").write_text(text, encoding="utf-8")
    fake.set_status(name, "Running", StartTimeUtc="2026-12-02T07:10:00Z")
    S.refresh(store, ref.job_id, backend)
    fake.complete_with_outputs(name, out, EndTimeUtc="2026-12-02T07:40:00Z")
    r = S.refresh(store, ref.job_id, backend, downloads=tmp_path / "dl")
    assert r["state"] == "completed" and r["ingest_error"] is None and r["run_id"]
    assert r["cost_usd"] == pytest.approx(0.5 * 2 * 12.24)
    got = tmp_path / "dl" / name / "named-outputs" / "results" / "parallel_run_step.txt"
    assert got.read_text(encoding="utf-8") == text  # the bytes the job wrote, through the storage account
    run = store.query("SELECT engine, label_set, job_id, status FROM runs WHERE run_id = ?", [r["run_id"]])[0]
    assert run == {"engine": "baseline", "label_set": "dev", "job_id": ref.job_id, "status": "imported"}
    preds = store.query("SELECT video_id, ghost_probing, status, confidence FROM predictions WHERE run_id = ? "
                        "ORDER BY video_id", [r["run_id"]])
    assert [(p["video_id"], p["ghost_probing"], p["status"]) for p in preds] == [
        ("images_1_001.avi", True, "ok"), ("images_1_002.avi", False, "ok"), ("images_1_003.avi", False, "ok")]
    assert S.collect_and_ingest(store, ref.job_id, backend, downloads=tmp_path / "dl2") == r["run_id"]
    assert store.scalar("SELECT count(*) FROM predictions WHERE run_id = ?", [r["run_id"]]) == 3

    # completed, but its output was never written: one sentence, no run, and it stays to be retried
    plan2 = BatchPlan(**{**asdict(plan), "run_id": plan.run_id + "-empty"})
    ref2 = backend.submit(plan2, store=store)
    fake.set_status(ref2.job_id.split(":", 1)[1], "Completed", EndTimeUtc="2026-12-02T07:40:00Z")
    r2 = S.refresh(store, ref2.job_id, backend, downloads=tmp_path / "dl3")
    assert r2["state"] == "completed" and r2["run_id"] is None
    assert r2["ingest_error"].startswith("The job's outputs in ") and r2["ingest_error"].endswith(
        "hold no results folder.") and "\n" not in r2["ingest_error"]
    assert ref2.job_id in [x["job_id"] for x in S.refresh_active(store, {"azureml": backend}, ingest=False)]
