"""What an Azure ML job for ``--engine videollama2`` runs on its node: the GPU worker, then the evaluation.

The official VideoLLaMA2 / Video-LLaMA code pins old transformers and needs CUDA, so it cannot share
GhostProbe's Python (3.11, transformers 5). The job's environment (``engines/cloud/azureml.py``,
``build_environment``) is the curated image of ``AzureML-ACPT-pytorch-1.13-py38-cuda11.7-gpu`` (Python 3.8,
torch 1.13 + CUDA 11.7 in ``/opt/conda/envs/ptca``) with a conda layer holding GhostProbe's own
requirements (the job's ``python``). On the node this module:

1. installs the worker's requirements (``engines/llm/worker/requirements-videollama2.txt``) and the
   ``videollama2`` package (pinned commit, ``--no-deps``) into the image's own Python
   (``GHOSTPROBE_WORKER_PYTHON``) unless it already imports ``videollama2``;
2. starts ``engines/llm/worker/server.py`` with that Python on 127.0.0.1 (``GHOSTPROBE_WORKER_ADAPTER``,
   ``GHOSTPROBE_WORKER_MODEL``, and the options ``GHOSTPROBE_WORKER_DTYPE`` = float16 — V100 has no
   bfloat16 —, ``GHOSTPROBE_WORKER_DEVICE_MAP`` = auto — a 7B model spread over the node's 4× 16 GB —,
   ``GHOSTPROBE_WORKER_ATTN`` = eager — torch 1.13 has no SDPA —, ``GHOSTPROBE_WORKER_OPTIONS`` for more);
3. waits for its ``/health`` (the model is loaded then; ``GHOSTPROBE_WORKER_START_TIMEOUT_S``);
4. runs the plan through the prediction core of ``ghostprobe eval`` (:func:`engines.cloud.worker.run_plan`)
   with ``GHOSTPROBE_VIDEOLLAMA2_URL`` pointing at the worker, writing the run folder to the output;
5. stops the worker.

Exit codes: 0 done, 2 a user error (one sentence), 3 the worker did not start (its log tail on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "engines" / "llm" / "worker" / "server.py"


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name) or default


def worker_command(python: str, port: int) -> list[str]:
    """The worker's command line from the job's environment variables."""
    cmd = [python, str(SERVER), "--adapter", _env("GHOSTPROBE_WORKER_ADAPTER", "videollama2"),
           "--host", "127.0.0.1", "--port", str(port), "--quiet"]
    model = _env("GHOSTPROBE_WORKER_MODEL")
    if model:
        cmd += ["--model", model]
    for key, var in (("dtype", "GHOSTPROBE_WORKER_DTYPE"), ("device_map", "GHOSTPROBE_WORKER_DEVICE_MAP"),
                     ("attn_implementation", "GHOSTPROBE_WORKER_ATTN")):
        if _env(var):
            cmd += ["--option", f"{key}={_env(var)}"]
    for opt in shlex.split(_env("GHOSTPROBE_WORKER_OPTIONS")):
        cmd += ["--option", opt]
    return cmd


def install_worker_packages(python: str) -> None:
    """The worker's requirements into ``python`` unless its ``videollama2`` already imports."""
    if _env("GHOSTPROBE_WORKER_INSTALL", "1") == "0":
        return
    if subprocess.run([python, "-c", "import videollama2"], capture_output=True).returncode == 0:
        return
    req = ROOT / _env("GHOSTPROBE_WORKER_REQUIREMENTS", "engines/llm/worker/requirements-videollama2.txt")
    subprocess.run([python, "-m", "pip", "install", "-q", "-r", str(req)], check=True)
    pkg = _env("GHOSTPROBE_WORKER_PACKAGE")
    if pkg:
        subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", pkg], check=True)


def start_worker(python: str, port: int, log_path: Path, timeout_s: float) -> tuple[subprocess.Popen, str]:
    """Start the worker and wait until ``/health`` says ok; (process, its URL)."""
    import httpx

    log = open(log_path, "ab")
    proc = subprocess.Popen(worker_command(python, port), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with {proc.returncode} before answering /health")
        try:
            r = httpx.get(url + "/health", timeout=5)
            if r.status_code == 200 and r.json().get("ok"):
                return proc, url
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(2)
    proc.terminate()
    raise RuntimeError(f"the worker did not answer /health within {timeout_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engines.cloud.videollama2_job")
    p.add_argument("--plan", required=True)
    p.add_argument("--videos", required=True)
    p.add_argument("--output", required=True)
    a = p.parse_args(argv)
    from engines.errors import GhostProbeError

    python = _env("GHOSTPROBE_WORKER_PYTHON", sys.executable)
    port = int(_env("GHOSTPROBE_WORKER_PORT", "8008"))
    out = Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "worker.log"
    proc = None
    try:
        install_worker_packages(python)
        proc, url = start_worker(python, port, log_path, float(_env("GHOSTPROBE_WORKER_START_TIMEOUT_S", "3600")))
    except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
        tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
        print(f"ghostprobe videollama2 job: {e}.\n{tail}", file=sys.stderr)
        return 3
    os.environ["GHOSTPROBE_VIDEOLLAMA2_URL"] = url
    try:
        from engines.cloud.worker import run_plan

        plan: dict[str, Any] = json.loads(Path(a.plan).read_text(encoding="utf-8"))
        m = run_plan(plan, a.videos, out)
    except GhostProbeError as e:
        print(f"ghostprobe videollama2 job: {e}", file=sys.stderr)
        return 2
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(json.dumps({"status": m["status"], "summary": m["summary"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
