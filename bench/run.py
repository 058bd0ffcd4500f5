"""Run every benchmark in bench/ (files named bench_*.py); each prints one JSON line per figure.

Usage: python bench/run.py [NAME ...]   e.g. python bench/run.py video startup
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in argv]
    failed = 0
    for script in scripts:
        start = time.perf_counter()
        r = subprocess.run([sys.executable, str(script)], cwd=HERE.parent, capture_output=True, text=True)
        for line in r.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                print(line, flush=True)
        if r.returncode != 0:
            failed += 1
            tail = " | ".join(r.stderr.strip().splitlines()[-3:])
            print(json.dumps({"bench": script.stem, "error": f"exit {r.returncode}", "stderr_tail": tail}), flush=True)
        print(json.dumps({"bench": script.stem, "figure": "wall_seconds", "value": round(time.perf_counter() - start, 2),
                          "unit": "s"}), file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
