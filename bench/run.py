"""Run every benchmark in bench/ (files named bench_*.py); each prints one JSON line per figure.

Usage: python bench/run.py [--full] [--timeout S] [NAME ...]   e.g. python bench/run.py video startup

Every figure line names its ``target`` and whether it ``passed`` (null: informational, a reference, or
skipped). After each benchmark one ``wall_seconds`` line gives its wall time; at the end one ``summary``
line counts the figures that passed and failed, the benchmarks that errored, the total wall seconds and
the machine (cores, load average before and after). ``--full`` passes ``--full`` to the benchmarks that
have a longer version; ``--timeout`` stops a benchmark that runs longer (default 420 s; it counts as an
error). Exit 1 when a benchmark errored or a figure failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _emit(obj: dict) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="benchmarks to run (bench_NAME.py); default: all")
    ap.add_argument("--full", action="store_true", help="the long versions where a benchmark has one")
    ap.add_argument("--timeout", type=float, default=420.0, help="seconds one benchmark may run (default 420)")
    args = ap.parse_args(argv)
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.names:
        known = {s.stem.removeprefix("bench_") for s in scripts}
        unknown = sorted(set(args.names) - known)
        if unknown:
            print(f"run.py: unknown benchmark {', '.join(unknown)}; known: {', '.join(sorted(known))}.", file=sys.stderr)
            return 2
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.names]
    load_before = _load()
    passed = failed = errored = 0
    walls: dict[str, float] = {}
    start_all = time.perf_counter()
    for script in scripts:
        name = script.stem.removeprefix("bench_")
        cmd = [sys.executable, str(script)]
        if args.full and '"--full"' in script.read_text(encoding="utf-8"):
            cmd.append("--full")
        start = time.perf_counter()
        try:
            r = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True, timeout=args.timeout)
            out, err, rc = r.stdout, r.stderr, r.returncode
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            err, rc = f"stopped after {args.timeout:g} s (--timeout)", None
        for line in out.splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            print(line, flush=True)
            try:
                fig = json.loads(line)
            except json.JSONDecodeError:
                continue
            if fig.get("passed") is True:
                passed += 1
            elif fig.get("passed") is False:
                failed += 1
        walls[name] = round(time.perf_counter() - start, 2)
        if rc != 0:
            errored += 1
            tail = " | ".join((err or "").strip().splitlines()[-3:])
            _emit({"bench": name, "error": f"exit {rc}" if rc is not None else "timeout", "stderr_tail": tail,
                   "passed": False})
        _emit({"bench": name, "figure": "wall_seconds", "value": walls[name], "unit": "s",
               "target": None, "passed": None, "loadavg": _load()})
    total = round(time.perf_counter() - start_all, 2)
    _emit({"bench": "run", "figure": "summary", "passed": failed == 0 and errored == 0, "figures_passed": passed,
           "figures_failed": failed, "benches_errored": errored, "benches": len(scripts), "wall_seconds": total,
           "wall_seconds_per_bench": walls, "target": "every figure passes, no benchmark errors",
           "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                       "loadavg_before": load_before, "loadavg_after": _load()}})
    return 1 if failed or errored else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
