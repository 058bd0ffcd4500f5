"""Entry script of the Azure ML parallel job (``RunFunction(entry_script=...)``).

Azure ML's parallel runner calls :func:`init` once per worker process and :func:`run` once per
mini-batch (a list of video file paths on the mounted videos input). ``run`` returns one JSON line
per video — a run-folder record (reports.run_folder) — and the parallel job's ``append_row`` output
action appends them all to one file, ``predictions.jsonl``. A failed mini-batch is retried by Azure ML
(``retry_settings``); its videos may then appear twice, and the last line wins when ingested.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

_RUNNER = None


def init() -> None:
    global _RUNNER
    from engines.cloud.worker import PlanRunner

    p = argparse.ArgumentParser()
    p.add_argument("--plan", default=os.environ.get("GHOSTPROBE_PLAN", "job/plan.json"))
    args, _ = p.parse_known_args()
    plan_path = Path(args.plan)
    if not plan_path.is_absolute():
        plan_path = Path(__file__).resolve().parents[2] / plan_path
    _RUNNER = PlanRunner(json.loads(plan_path.read_text(encoding="utf-8")))


def run(mini_batch: list[str]) -> list[str]:
    if _RUNNER is None:
        init()
    rows = []
    for path in mini_batch:
        rec = _RUNNER.answer(path)
        rows.append(json.dumps(rec, ensure_ascii=False, sort_keys=True, default=str))
    return rows
