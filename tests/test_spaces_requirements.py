"""requirements.txt is what a CPU Hugging Face Space installs, by itself, before the repository is there.

- It names packages only (no ``.``, no paths, no editable installs), with the same bounds as
  pyproject.toml's core dependencies, and nothing of the GPU/LLM or cloud extras.
- ``pip install --dry-run -r requirements.txt`` resolves in an empty folder holding only that file, and the
  resolved set has no torch/CUDA wheel and no cloud SDK.
- The app starts (HTTP 200 on /) from the checkout with **only** those packages: a throwaway venv without
  system site-packages installs requirements.txt (from pip's cache and the configured indexes), then
  ``python -I app.py`` runs as a Space does. Measured here: ~80 s to install, ~55 s for the first start
  (byte-compiling gradio); both slow.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.appserver import free_port

ROOT = Path(__file__).resolve().parents[1]
HEAVY = re.compile(r"^(torch|torchvision|torchaudio|transformers|accelerate|nvidia-.*|triton|openai|boto3|botocore|"
                   r"azure-.*|anomalib|lightning|bitsandbytes|flash-attn|decord-gpu)$")


def _requirements() -> list[Requirement]:
    out = []
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith(("-", ".", "/")) and "://" not in line and " @ " not in line, \
            f"requirements.txt must name packages only (a Space has no project to install there): {line}"
        out.append(Requirement(line))
    return out


def test_requirements_match_pyproject_and_leave_out_gpu_and_cloud():
    reqs = {canonicalize_name(r.name): r for r in _requirements()}
    core = [Requirement(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    for dep in core:
        name = canonicalize_name(dep.name)
        assert name in reqs, f"{dep.name} is a core dependency in pyproject.toml but missing from requirements.txt"
        assert reqs[name].specifier == dep.specifier, f"{dep.name}: {reqs[name].specifier} != {dep.specifier}"
        assert str(reqs[name].marker or "") == str(dep.marker or "")
    for name in reqs:
        assert not HEAVY.match(name), f"{name} does not belong on a CPU Space (it is an optional extra)"
    assert {"gradio", "duckdb", "opencv-python-headless", "av", "huggingface-hub"} <= set(reqs)


@pytest.mark.slow
def test_pip_dry_run_resolves_with_only_requirements_txt(tmp_path):
    shutil.copy(ROOT / "requirements.txt", tmp_path / "requirements.txt")
    assert [p.name for p in tmp_path.iterdir()] == ["requirements.txt"]
    report = tmp_path.parent / f"{tmp_path.name}-report.json"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                        "--report", str(report), "-r", "requirements.txt"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    resolved = {canonicalize_name(i["metadata"]["name"]) for i in json.loads(report.read_text())["install"]}
    assert {"gradio", "duckdb", "av", "numpy"} <= resolved
    assert not [n for n in resolved if HEAVY.match(n)], sorted(n for n in resolved if HEAVY.match(n))


@pytest.mark.slow
def test_app_starts_with_only_the_requirements_installed(tmp_path):
    venv = tmp_path / "venv"
    t0 = time.monotonic()
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True, timeout=300)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "GHOSTPROBE_"))}
    r = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "-r", str(ROOT / "requirements.txt")],
                       env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    install_s = time.monotonic() - t0
    # nothing of the project or the optional extras is importable there
    probe = subprocess.run([str(py), "-I", "-c", "import importlib.util as u, json; print(json.dumps("
                            "{m: u.find_spec(m) is not None for m in ['torch', 'transformers', 'boto3', 'openai', "
                            "'webapp', 'gradio', 'duckdb']}))"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
    found = json.loads(probe.stdout)
    assert found == {"torch": False, "transformers": False, "boto3": False, "openai": False, "webapp": False,
                     "gradio": True, "duckdb": True}, found

    port = free_port()
    data = tmp_path / "data"
    env.update(GHOSTPROBE_DATA_DIR=str(data), GHOSTPROBE_PORT=str(port), HF_HUB_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    log = open(tmp_path / "server.log", "w")
    t1 = time.monotonic()
    proc = subprocess.Popen([str(py), "-I", "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        status = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code
                if status == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        start_s = time.monotonic() - t1
        text = (tmp_path / "server.log").read_text(errors="replace")
        assert status == 200, text[-3000:]
        # the engines were found through engines.registry.BUILTIN (no distribution installed): baseline runs
        deadline = time.monotonic() + 300
        while "demo clips: ready" not in text and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            text = (tmp_path / "server.log").read_text(errors="replace")
        assert "demo clips: ready" in text, text[-3000:]
        assert "Traceback" not in text, text[-3000:]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    listed = subprocess.run([str(py), "-I", "-c", "import sys; sys.path.insert(0, '.'); "
                            "from engines.registry import engine_status; import json; "
                            "print(json.dumps({r['name']: r['available'] for r in engine_status()}))"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    engines = json.loads(listed.stdout.strip().splitlines()[-1])
    assert engines["baseline"] is True and engines["transformers"] is False and engines["openai"] is False
    print(f"\nthrowaway venv: install {install_s:.0f} s, first start to HTTP 200 {start_s:.0f} s")
