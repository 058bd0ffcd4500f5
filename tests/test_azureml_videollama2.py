"""The seed's case as an Azure ML job: Video-LLaMA2 in the GPU worker's environment on a 4× V100 16 GB node.

- ``jobs submit-eval --backend azureml --engine videollama2`` through the real CLI, azure-ai-ml's real
  MLClient and DefaultAzureCredential (its Azure CLI link answered on loopback), against the loopback
  workspace of tests/azureml_fake.py: the job, environment and code as they went over the wire.
- The job's command (``python -m engines.cloud.videollama2_job``) run for real here: it starts the worker
  (engines/llm/worker/server.py, stand-in ``echo`` adapter: the real VideoLLaMA2 needs CUDA and its own
  pins), waits for /health, answers every planned clip through the prediction core with the
  ``videollama2`` engine pointed at it, writes the run folder, and stops the worker.

Not run on a real cluster: the image, the node's pip install of the worker's requirements and the model
itself are unproven until someone submits it to a real workspace.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

pytest.importorskip("azure.ai.ml")

from azureml_fake import FakeAzureML, fake_az_cli  # noqa: E402

from engines.cloud import azureml as A  # noqa: E402
from engines.cloud import service as S  # noqa: E402
from reports import run_folder as RF  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SUB = "00000000-0000-0000-0000-000000000000"
VIDEOS = "azureml://datastores/workspaceblobstore/paths/dada-dev/"
CLIPS = ("images_10_001.avi", "images_11_002.avi", "images_28_003.avi")


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    with FakeAzureML(tmp_path_factory.mktemp("azureml-vl2")) as f:
        yield f


def _env(fake, tmp_path, **extra):
    az = fake_az_cli(tmp_path / "az-bin")
    env = {**os.environ, "GHOSTPROBE_DATA_DIR": str(tmp_path / "data"), "OMP_NUM_THREADS": "1",
           "PATH": f"{az}{os.pathsep}{os.environ.get('PATH', '')}", "AZURE_TOKEN_CREDENTIALS": "AzureCliCredential",
           "AZUREML_DEV_URL_MFE": fake.url, "REQUESTS_CA_BUNDLE": str(fake.cert), "NO_PROXY": "127.0.0.1",
           "GHOSTPROBE_AZUREML_SUBSCRIPTION": SUB, "GHOSTPROBE_AZUREML_RESOURCE_GROUP": "rg-ghost",
           "GHOSTPROBE_AZUREML_WORKSPACE": "ws-ghost", "GHOSTPROBE_AZUREML_VIDEOS": VIDEOS, **extra}
    for k in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZUREML_CONFIG", "GHOSTPROBE_AZUREML_COMPUTE",
              "GHOSTPROBE_AZUREML_SKU", "GHOSTPROBE_VIDEOLLAMA2_URL", "HTTPS_PROXY", "https_proxy"):
        env.pop(k, None)
    env.update(extra)
    return env


def _cli(env, db, *args, code=0):
    p = subprocess.run([sys.executable, "-m", "webapp.cli", "--db", str(db), *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == code, (p.stdout[-1500:], p.stderr[-3000:])
    return p


def test_seed_videollama2_job_as_submitted_over_the_wire(fake, tmp_path):
    env = _env(fake, tmp_path)
    db = tmp_path / "studio.duckdb"
    labels = tmp_path / "labels.csv"
    labels.write_text("video_id,ghost_probing\n" + "".join(f"{v},{i % 2}\n" for i, v in enumerate(CLIPS)))
    _cli(env, db, "labels", "import", str(labels), "--set", "seed", "--format", "generic")
    args = ("jobs", "submit-eval", "--backend", "azureml", "--engine", "videollama2",
            "--model", "DAMO-NLP-SG/VideoLLaMA2-7B-16F", "--labels", "seed", "--prompt", "ghost_probing@1",
            "--compute", "gpu-v100x4", "--instance-type", "Standard_NC24s_v3")

    # look first: the dry run prints the same spec and contacts nothing
    n0 = len(fake.requests)
    dry = json.loads(_cli(env, db, *args, "--dry-run", "--json").stdout)
    assert len(fake.requests) == n0 and dry["submitted"] is False
    assert dry["job"]["component"]["command"] == A.VIDEOLLAMA2_COMMAND
    assert dry["job"]["environment"]["image"] == A.ACPT_IMAGE

    sub = json.loads(_cli(env, db, *args, "--json").stdout)
    name = sub["job_id"].split(":", 1)[1]
    assert sub["submitted"] is True and sub["videos"] == 3 and name in fake.jobs
    assert (tmp_path / "az-bin" / "az-calls.log").read_text().count("get-access-token") >= 1

    p = [b for b in fake.job_puts() if b["properties"].get("tags", {}).get("ghostprobe_run") == sub["run_id"]][-1]
    p = p["properties"]
    # the worker started inside the job, then the prediction core of `ghostprobe eval` pointed at it
    assert p["jobType"] == "Command"
    assert p["command"] == ("python -m engines.cloud.videollama2_job --plan job/plan.json --videos ${{inputs.videos}} "
                            "--output ${{outputs.results}}")
    assert p["computeId"].endswith("/workspaces/ws-ghost/computes/gpu-v100x4")
    assert p["resources"]["instanceCount"] == 1
    assert p["inputs"]["videos"]["uri"] == VIDEOS and p["outputs"]["results"]["jobOutputType"] == "uri_folder"
    assert p["tags"]["engine"] == "videollama2"
    ev = p["environmentVariables"]
    assert ev["GHOSTPROBE_WORKER_DTYPE"] == "float16" and ev["GHOSTPROBE_WORKER_DEVICE_MAP"] == "auto"
    assert ev["GHOSTPROBE_WORKER_ATTN"] == "eager"  # torch 1.13 in the curated image has no SDPA
    assert ev["GHOSTPROBE_WORKER_ADAPTER"] == "videollama2"
    assert ev["GHOSTPROBE_WORKER_MODEL"] == "DAMO-NLP-SG/VideoLLaMA2-7B-16F"
    assert ev["GHOSTPROBE_WORKER_PYTHON"] == "/opt/conda/envs/ptca/bin/python"
    assert ev["GHOSTPROBE_WORKER_REQUIREMENTS"] == "engines/llm/worker/requirements-videollama2.txt"
    assert ev["GHOSTPROBE_WORKER_PACKAGE"].endswith("VideoLLaMA2@c0bb03abf6b8a6b9a8dccac006fb4db5d4d9e414")
    assert not any(k.startswith(("AZURE_", "GHOSTPROBE_AZUREML")) for k in ev)  # no credentials or workspace

    # the environment: the image of AzureML-ACPT-pytorch-1.13-py38-cuda11.7-gpu + GhostProbe as a client
    env_put = [r for r in fake.requests if r["method"] == "PUT" and "/environments/" in r["path"]][-1]
    assert p["environmentId"].endswith(env_put["path"].split("/workspaces/ws-ghost")[1])
    envp = json.loads(env_put["body"])["properties"]
    assert envp["image"] == "mcr.microsoft.com/azureml/curated/acpt-pytorch-1.13-cuda11.7:latest"
    conda = envp["condaFile"]
    assert "python=3.11" in conda and "httpx>=0.27" in conda and "duckdb>=1.4" in conda
    assert "transformers" not in conda and "torch" not in conda  # the model runs in the worker's own Python

    # the code: the project with the worker, its requirements and the plan with the seed's Chinese prompt
    code_put = [r for r in fake.requests if r["method"] == "PUT" and "/codes/" in r["path"]][-1]
    assert p["codeId"].endswith(code_put["path"].split("/workspaces/ws-ghost")[1])
    blob_root = json.loads(code_put["body"])["properties"]["codeUri"].split("127.0.0.1")[1].split(":", 1)[1]
    blob_root = "/" + blob_root.split("/", 1)[1]
    files = {k[len(blob_root):].lstrip("/"): v for k, v in fake.blobs.items() if k.startswith(blob_root)}
    for f in ("engines/cloud/videollama2_job.py", "engines/llm/worker/server.py",
              "engines/llm/worker/adapters/videollama2.py", "engines/llm/worker/requirements-videollama2.txt"):
        assert f in files, f
    assert b"transformers==4.40.0" in files["engines/llm/worker/requirements-videollama2.txt"]
    plan = json.loads(files["job/plan.json"])
    assert plan["run_id"] == sub["run_id"] and plan["prompt"]["ref"] == "ghost_probing@1"
    assert "请判断视频中是否发生了“鬼探头”" in plan["prompt"]["text"]
    assert [v["video_id"] for v in plan["videos"]] == sorted(CLIPS)
    assert plan["settings"]["engine"] == "videollama2" and plan["settings"]["location"] == "azure:Standard_NC24s_v3"

    # sharding it or asking for several nodes is refused in one sentence, exit 2, nothing submitted
    n1 = len(fake.job_puts())
    for extra, why in ((("--parallel", "4"), "drop --parallel"), (("--instance-count", "2"), "--instance-count 1")):
        bad = _cli(env, db, *args, *extra, code=2)
        assert why in bad.stderr and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert len(fake.job_puts()) == n1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_job_command_starts_the_worker_and_evaluates_through_it(store, tmp_path):
    from media import write_h264_mp4

    videos = tmp_path / "videos"
    videos.mkdir()
    ids = []
    for i in range(2):
        write_h264_mp4(videos / f"clip_{i}.mp4", n_frames=24 + 8 * i)
        ids.append(f"clip_{i}.mp4")
    with store.write() as cur:
        cur.execute("INSERT INTO label_sets (name, source) VALUES ('seed', 'test')")
        for i, v in enumerate(ids):
            cur.execute("INSERT INTO labels (label_set, video_id, ghost_probing, kind) VALUES (?, ?, ?, ?)",
                        ["seed", v, i == 0, "ghost_probing" if i == 0 else "none"])
    plan = S.build_plan(store, engine="videollama2", model="DAMO-NLP-SG/VideoLLaMA2-7B-16F", label_set="seed",
                        prompt_ref="ghost_probing@1", settings={"location": "azure:Standard_NC24s_v3"})
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(asdict(plan), ensure_ascii=False))
    s = A.AzureMLSettings(worker_python=sys.executable, worker_options=["num_frames=8"])
    # the worker's command line on the node: the seed's V100 options
    from engines.cloud import videollama2_job as VJ

    envs = A.worker_env_vars(plan, s)
    old = {k: os.environ.get(k) for k in envs}
    os.environ.update(envs)
    try:
        cmd = VJ.worker_command("/opt/conda/envs/ptca/bin/python", 8008)
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    assert cmd[:2] == ["/opt/conda/envs/ptca/bin/python", str(ROOT / "engines/llm/worker/server.py")]
    joined = " ".join(cmd)
    for part in ("--adapter videollama2", "--model DAMO-NLP-SG/VideoLLaMA2-7B-16F", "--host 127.0.0.1",
                 "--port 8008", "--option dtype=float16", "--option device_map=auto",
                 "--option attn_implementation=eager", "--option num_frames=8"):
        assert part in joined, part
    port = _free_port()
    env = {**os.environ, **A.worker_env_vars(plan, s), "GHOSTPROBE_WORKER_ADAPTER": "echo",
           "GHOSTPROBE_WORKER_INSTALL": "0", "GHOSTPROBE_WORKER_PORT": str(port),
           "GHOSTPROBE_DATA_DIR": str(tmp_path / "data")}
    env.pop("GHOSTPROBE_VIDEOLLAMA2_URL", None)
    out = tmp_path / "results"
    cmd = A.VIDEOLLAMA2_COMMAND.replace("${{inputs.videos}}", str(videos)).replace("${{outputs.results}}", str(out))
    # the job's command as Azure ML runs it: `python` is the conda layer's (here: this venv's), job/plan.json ours
    argv = [sys.executable if a == "python" else str(plan_file) if a == "job/plan.json" else a for a in cmd.split()]
    p = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-3000:])
    assert json.loads(p.stdout.strip().splitlines()[-1])["status"] == "done"
    manifest, records = RF.read_run_folder(out)
    assert manifest["run_id"] == plan.run_id and manifest["planned"] == 2 and manifest["status"] == "done"
    assert manifest["identity"]["engine"] == "videollama2"
    assert [r["video_id"] for r in records] == ids
    for r in records:  # the stand-in worker answered over HTTP; an echo is never a verdict
        assert r["status"] == "unparsed" and "STAND-IN ECHO" in r["response"] and r["latency_s"] > 0, r
    assert (out / "worker.log").exists()
    # the worker is gone afterwards
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_submit_without_the_azure_sdk_is_one_sentence(tmp_path, env_dirs):
    """A machine without azure-ai-ml (a CPU Space): `jobs submit-eval`, dry run or not, says so in one sentence
    and exits 2. The SDK is hidden by an empty regular `azure` package first on the path (what Python finds
    when the namespace packages are not installed)."""
    hide = tmp_path / "no-azure"
    (hide / "azure").mkdir(parents=True)
    (hide / "azure" / "__init__.py").write_text("")
    env = {**os.environ, "PYTHONPATH": str(hide), "GHOSTPROBE_DATA_DIR": str(tmp_path / "data")}
    for dry in ((), ("--dry-run",)):
        p = subprocess.run([sys.executable, "-m", "webapp.cli", "jobs", "submit-eval", "--backend", "azureml",
                            "--engine", "baseline", "--subset", "a.avi", *dry], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 2, (p.stdout, p.stderr)
        assert "Azure ML needs azure-ai-ml and azure-identity" in p.stderr and "Traceback" not in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1
    from webapp import messages as MSG
    import webapp.tabs.prompt_lab  # noqa: F401  (its translations)

    assert MSG.translate("Azure ML needs azure-ai-ml and azure-identity: pip install 'ghostprobe-studio[cloud]'.",
                         "zh").startswith("Azure ML 需要 azure-ai-ml 和 azure-identity")
