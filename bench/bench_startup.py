"""Start-up: process start to the first HTTP 200 of "/", on a fresh data folder (first start: empty library, the
demo clips render in the background) and on an already-indexed library.

Reference, timed in the same run and interleaved with the targets: a bare ``python -c "import gradio"``,
which every Gradio app pays. Target (issue 9): a fresh first start within 1.3× of ``import gradio``.
``--reps`` repetitions (≥ 3); min and median of each; one JSON line per figure; the HTTP poll runs every
20 ms; every temporary folder is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.3
POLL_S = 0.02


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(work: Path) -> dict[str, str]:
    env = {**os.environ, "GHOSTPROBE_DATA_DIR": str(work / "data"), "GHOSTPROBE_LIBRARY": str(work / "library"),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    for k in ("GHOSTPROBE_DB", "GHOSTPROBE_UPLOADS", "GHOSTPROBE_CACHE", "GHOSTPROBE_AUTH"):
        env.pop(k, None)
    return env


def time_import_gradio() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import gradio"], check=True, cwd=ROOT)
    return time.perf_counter() - t0


def time_start(work: Path, wait_demo: bool = False, timeout: float = 600.0) -> float:
    """Seconds from process start to the first HTTP 200 of "/" (then the server is stopped)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log = open(work / f"server-{port}.log", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "webapp.cli", "serve", "--port", str(port)], cwd=ROOT,
                            env=_env(work), stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(timeout=5) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the app exited with {proc.returncode}; see {log.name}")
                try:
                    if client.get(url).status_code == 200:
                        elapsed = time.perf_counter() - t0
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() - t0 > timeout:
                    raise RuntimeError(f"no HTTP 200 within {timeout:.0f} s")
                time.sleep(POLL_S)
        if wait_demo:  # used to prepare the indexed library: let the background demo rendering finish
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                text = (work / f"server-{port}.log").read_text(errors="replace")
                if "demo clips: ready" in text or "demo clips: not needed" in text:
                    break
                if "demo clips: failed" in text:
                    raise RuntimeError("the demo clips failed to render")
                time.sleep(0.1)
        return elapsed
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _summary(name: str, values: list[float], ref: list[float] | None = None, **extra) -> dict:
    out = {"bench": "startup", "figure": name, "unit": "s", "reps": len(values), "min": round(min(values), 3),
           "median": round(statistics.median(values), 3), "values": [round(v, 3) for v in values]}
    if ref:
        out["ratio_vs_import_gradio_median"] = round(statistics.median(values) / statistics.median(ref), 3)
        out["ratio_vs_import_gradio_min"] = round(min(values) / min(ref), 3)
    out.update(extra)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each figure (at least 3)")
    args = ap.parse_args(argv)
    reps = max(3, args.reps)
    temp = Path(tempfile.mkdtemp(prefix="gp-bench-start-"))
    try:
        indexed = temp / "indexed"
        indexed.mkdir()
        time_start(indexed, wait_demo=True)  # renders and indexes the demo clips once
        ref, fresh, warm = [], [], []
        for i in range(reps):  # interleaved: reference, fresh first start, indexed start
            ref.append(time_import_gradio())
            work = temp / f"fresh-{i}"
            work.mkdir()
            fresh.append(time_start(work))
            shutil.rmtree(work, ignore_errors=True)
            warm.append(time_start(indexed))
        f = _summary("first_start_fresh_library", fresh, ref, target_ratio=TARGET_RATIO)
        f["passed"] = f["ratio_vs_import_gradio_median"] <= TARGET_RATIO
        w = _summary("start_indexed_library", warm, ref)
        r = _summary("import_gradio_reference", ref)
        for line in (f, w, r):
            print(json.dumps(line))
        return 0
    finally:
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
