"""Cold start: process start to the first HTTP 200 of the page, on an already-indexed library and on a fresh one.

Baseline in the same run: starting a bare `python -c "import gradio"`, which every Gradio app pays.
One JSON line per figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.appserver import RunningApp  # noqa: E402


def time_start(work: Path) -> float:
    t0 = time.perf_counter()
    with RunningApp(work):
        return time.perf_counter() - t0


def main() -> None:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import gradio"], check=True)
    import_gradio = time.perf_counter() - t0
    work = Path(tempfile.mkdtemp(prefix="gp-bench-start-"))
    fresh = time_start(work)  # renders demo clips, indexes, thumbnails lazily
    warm = min(time_start(work) for _ in range(2))  # library already indexed
    for name, value in [("cold_start_fresh_library", fresh), ("cold_start_indexed_library", warm),
                        ("import_gradio_baseline", import_gradio)]:
        print(json.dumps({"bench": "startup", "figure": name, "value": round(value, 3), "unit": "s",
                          "ratio_vs_import_gradio": round(value / import_gradio, 2)}))


if __name__ == "__main__":
    main()
