"""What runs on a cloud node: a plan's videos through the prediction core, written as a run folder.

``python -m engines.cloud.worker --plan job/plan.json --videos DIR --output DIR`` (an Azure ML command
job) answers every video of the plan with :func:`webapp.predict.compute` — the same sampling, prompt
rendering, engine call and verdict parsing as ``ghostprobe eval`` — and appends one record per video
to ``DIR/predictions.jsonl`` (reports.run_folder). Videos already in the output folder are skipped, so
a restarted job resumes. The Azure ML parallel job calls :class:`PlanRunner` from
``engines/cloud/azureml_parallel.py`` for each mini-batch instead.

The plan (``job/plan.json``) is an :class:`engines.base.BatchPlan` as JSON: ``identity``, ``prompt``
(``{ref, hash, text}`` where text is the template's YAML), ``videos`` (``[{video_id, path, sha256}]``
with paths relative to the videos input), ``sampling``, ``options``, ``label_set`` and ``settings``
(``engine``, ``model``, ``engine_config``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from engines.errors import GhostProbeError


def plan_to_json(plan: Any) -> dict[str, Any]:
    return asdict(plan) if not isinstance(plan, dict) else dict(plan)


def manifest_for(plan: dict[str, Any], *, job_id: str | None = None, location: str | None = None) -> dict[str, Any]:
    """The run manifest a plan's run folder carries."""
    settings = plan.get("settings") or {}
    return {"run_id": plan["run_id"], "identity": plan["identity"], "prompt": plan.get("prompt"),
            "label_set": plan.get("label_set"), "selection": [v["video_id"] for v in plan.get("videos") or []],
            "sampling": plan.get("sampling") or {}, "options": plan.get("options") or {},
            "planned": len(plan.get("videos") or []), "location": location or settings.get("location"),
            "instances": int(plan.get("instances") or 1), "job_id": job_id or settings.get("job_id")}


class PlanRunner:
    """Open the plan's engine and prompt once; answer videos one at a time (no database)."""

    def __init__(self, plan: dict[str, Any]):
        from webapp.predict import make_options, open_engine

        self.plan = plan
        s = plan.get("settings") or {}
        ident = plan["identity"]
        self.engine = open_engine(s.get("engine") or ident["engine"], s.get("model") or ident.get("model"),
                                  **dict(s.get("engine_config") or {}))
        self.options = make_options({k: v for k, v in (plan.get("options") or {}).items()})
        self.sampling = dict(plan.get("sampling") or {})
        self.template = None
        prompt = plan.get("prompt")
        if prompt and prompt.get("text"):
            from prompts import load_template

            self._tmp = tempfile.TemporaryDirectory(prefix="gp-prompt-")
            f = Path(self._tmp.name) / "prompt.yaml"
            f.write_text(prompt["text"], encoding="utf-8")
            self.template = load_template(f)
            if prompt.get("hash") and self.template.hash != prompt["hash"]:
                raise GhostProbeError(f"The job's prompt hashes to {self.template.hash[:12]}, not "
                                      f"{prompt['hash'][:12]} as planned; resubmit the job.")
        self.by_id = {v["video_id"]: v for v in plan.get("videos") or []}

    def answer(self, path: str | Path, video_id: str | None = None) -> dict[str, Any]:
        from reports.run_folder import make_record
        from webapp.predict import compute, video_id_of

        video_id = video_id or video_id_of(path)
        sha = (self.by_id.get(video_id) or {}).get("sha256")
        c = compute(self.engine, path, video_id, self.sampling, self.options, self.template, sha256=sha)
        extra = {"failed": c.failed} if c.failed else {}
        return make_record(video_id, c.sha256 or sha, c.verdict, c.call, error=c.error, extra=extra)


def run_plan(plan: dict[str, Any], videos_dir: str | Path, output: str | Path) -> dict[str, Any]:
    """Answer every planned video not yet in ``output``; returns the closed manifest."""
    from reports.run_folder import MANIFEST, RunFolderWriter, latest_records, read_run_folder

    videos_dir, output = Path(videos_dir), Path(output)
    done: set[str] = set()
    if (output / MANIFEST).exists():
        done = {r["video_id"] for r in latest_records(read_run_folder(output)[1]) if r["status"] != "error"}
    writer = RunFolderWriter(output, manifest_for(plan))
    runner = PlanRunner(plan)
    counts = {"ok": 0, "unparsed": 0, "error": 0, "skipped_done": 0}
    try:
        for v in plan.get("videos") or []:
            if v["video_id"] in done:
                counts["skipped_done"] += 1
                continue
            rec = runner.answer(videos_dir / (v.get("path") or v["video_id"]), v["video_id"])
            writer.add(rec)
            counts[rec["status"]] += 1
            print(f"{v['video_id']}: {rec['status']}", flush=True)
    except BaseException as e:
        writer.close("failed", {**counts, "error": str(e)[:500]})
        raise
    return writer.close("done", counts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engines.cloud.worker")
    p.add_argument("--plan", required=True)
    p.add_argument("--videos", required=True, help="the folder the plan's video paths are relative to")
    p.add_argument("--output", required=True, help="the run folder to write")
    a = p.parse_args(argv)
    try:
        plan = json.loads(Path(a.plan).read_text(encoding="utf-8"))
        m = run_plan(plan, a.videos, a.output)
    except GhostProbeError as e:
        print(f"ghostprobe worker: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"status": m["status"], "summary": m["summary"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
