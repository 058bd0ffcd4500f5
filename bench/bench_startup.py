"""Start-up: process start to the first HTTP 200 of "/", on a fresh data folder (first start: empty library, the
demo clips render in the background once the server answers) and, with ``--full``, on an already-indexed
library (``start_indexed_library``: the demo clips rendered and indexed by an earlier start).

Reference, timed in the same run and interleaved with the targets (in turn, ABBA): a bare
``python -c "import gradio"``,
which every Gradio app pays. Target (issue 9): a fresh first start within 1.3× of ``import gradio``
(median over median). ``--reps`` repetitions (≥ 3); min and median of each; one JSON line per figure; the
HTTP poll runs every 20 ms.

Both commands run on the same footing for compiled bytecode: ``PYTHONDONTWRITEBYTECODE`` is dropped and
``PYTHONPYCACHEPREFIX`` points into the temporary folder, filled by one untimed run of each before timing
(an installed Gradio ships compiled; a checkout's own modules are compiled on their first run, once).
Without that, a shell with ``PYTHONDONTWRITEBYTECODE=1`` makes the app recompile its ~70 modules on every
start (~0.4 s) while ``import gradio`` reads site-packages' bytecode — a difference no user sees twice.

With ``--full`` also (no target): ``demo_clips_ready_after_start``, seconds from process start until the
first start's demo clips are rendered and indexed (one run: the one that prepares the indexed library;
``bench_demo_path`` prints the same figure in every run).
Everything is written under one temporary folder, removed at the end.
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


PYCACHE: Path | None = None  # set by main(): the temporary bytecode folder both commands share


def _base_env() -> dict[str, str]:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if PYCACHE is not None:
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def _env(work: Path) -> dict[str, str]:
    env = {**_base_env(), "GHOSTPROBE_DATA_DIR": str(work / "data"), "GHOSTPROBE_LIBRARY": str(work / "library"),
           "GRADIO_TEMP_DIR": str(work / "gradio-tmp")}
    for k in ("GHOSTPROBE_DB", "GHOSTPROBE_UPLOADS", "GHOSTPROBE_CACHE", "GHOSTPROBE_AUTH",
              "GRADIO_DEFAULT_CONCURRENCY_LIMIT"):
        env.pop(k, None)
    return env


CPU: dict[str, list[float]] = {}  # figure -> CPU seconds (user + system) of the timed process, per repetition


def _cpu_of(pid: int) -> float | None:
    """User + system CPU seconds a running process (all its threads) has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def time_import_gradio() -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", "import gradio"], cwd=ROOT, env=_base_env())
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"import gradio exited with {proc.returncode}")
    CPU.setdefault("import_gradio", []).append(usage.ru_utime + usage.ru_stime)
    return elapsed


def time_start(work: Path, wait_demo: bool = False, timeout: float = 600.0,
               cpu_key: str | None = None) -> float | tuple[float, float]:
    """Seconds from process start to the first HTTP 200 of "/" (then the server is stopped); with
    ``wait_demo``, (that, seconds from process start until the demo clips are ready)."""
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
                        cpu = _cpu_of(proc.pid)
                        if cpu_key and cpu is not None:
                            CPU.setdefault(cpu_key, []).append(cpu)
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
                    return elapsed, time.perf_counter() - t0
                if "demo clips: failed" in text:
                    raise RuntimeError("the demo clips failed to render")
                time.sleep(0.05)
            raise RuntimeError(f"the demo clips were not ready within {timeout:.0f} s")
        return elapsed
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _machine() -> dict:
    return {"cores": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()]}


def _summary(name: str, values: list[float], ref: list[float] | None = None, cpu: list[float] | None = None,
             ref_cpu: list[float] | None = None, **extra) -> dict:
    out = {"bench": "startup", "figure": name, "unit": "s", "reps": len(values), "min": round(min(values), 3),
           "median": round(statistics.median(values), 3), "values": [round(v, 3) for v in values],
           "target": None, "passed": None}
    if ref:
        out["ratio_vs_import_gradio_median"] = round(statistics.median(values) / statistics.median(ref), 3)
        out["ratio_vs_import_gradio_min"] = round(min(values) / min(ref), 3)
    if cpu:  # CPU seconds (user + system, every thread) until the 200: far less noisy than wall time on a busy host
        out["cpu_s_median"] = round(statistics.median(cpu), 3)
        if ref_cpu:
            out["cpu_ratio_vs_import_gradio_median"] = round(statistics.median(cpu) / statistics.median(ref_cpu), 3)
    out.update(extra)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each figure (at least 3)")
    ap.add_argument("--full", action="store_true", help="also the start on an already-indexed library")
    args = ap.parse_args(argv)
    reps = max(3, args.reps)
    global PYCACHE
    temp = Path(tempfile.mkdtemp(prefix="gp-bench-start-"))
    PYCACHE = temp / "pycache"
    try:
        warmup = temp / "warmup"
        warmup.mkdir()
        time_start(warmup)  # untimed: fills the bytecode folder (gradio and everything the app imports) once
        shutil.rmtree(warmup, ignore_errors=True)
        indexed = temp / "indexed"
        demo_ready = None
        if args.full:
            indexed.mkdir()
            _, demo_ready = time_start(indexed, wait_demo=True)  # renders and indexes the demo clips once
        CPU.clear()  # the untimed warm-ups' figures left out
        ref, fresh, warm = [], [], []
        for i in range(reps):  # interleaved, ABBA: reference and fresh first start in turn[, indexed start]
            work = temp / f"fresh-{i}"
            work.mkdir()
            if i % 2 == 0:
                ref.append(time_import_gradio())
                fresh.append(time_start(work, cpu_key="fresh"))
            else:
                fresh.append(time_start(work, cpu_key="fresh"))
                ref.append(time_import_gradio())
            shutil.rmtree(work, ignore_errors=True)
            if args.full:
                warm.append(time_start(indexed, cpu_key="indexed"))
        rc = CPU.get("import_gradio")
        f = _summary("first_start_fresh_library", fresh, ref, CPU.get("fresh"), rc)
        f["target"] = f"ratio_vs_import_gradio_median <= {TARGET_RATIO}"
        f["passed"] = f["ratio_vs_import_gradio_median"] <= TARGET_RATIO
        w = _summary("start_indexed_library", warm, ref, CPU.get("indexed"), rc) if warm else None
        r = _summary("import_gradio_reference", ref, None, rc)
        d = None if demo_ready is None else {
            "bench": "startup", "figure": "demo_clips_ready_after_start", "unit": "s", "reps": 1,
            "value": round(demo_ready, 3), "target": None, "passed": None,
            "note": "first start, from process start until the background demo clips are rendered and indexed"}
        for line in (x for x in (f, w, r, d) if x is not None):
            line.update(_machine())
            print(json.dumps(line))
        return 0
    finally:
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
