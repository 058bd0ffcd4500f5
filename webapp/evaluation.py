"""The evaluation runner: an engine (+ a prompt version for chat models) over a selection of videos.

It is three steps around the prediction core (webapp/predict.py), which does the per-video work —
identity, hash, cache, sample, call, log — exactly as ``ghostprobe detect`` and the Chat tab do:

1. :func:`plan_run` validates every option *before* anything is stored (engine, availability,
   sampling, generation options, concurrency, workers, label set, prompt), resolves the engine's
   identity (``describe()``), the videos and the labelled ones missing from the library (they count
   as planned: the run says so before it starts and ends ``partial``), then creates the run or
   re-opens it for ``resume`` (refusing a resume whose engine now resolves differently).
2. :func:`predict_one` answers one video through the :class:`~webapp.predict.Predictor`; a video that
   cannot be read or an engine that fails becomes an ``error`` answer with one sentence.
3. :func:`schedule` runs the videos: remote engines ``concurrency`` requests at once on threads, CPU
   engines that are process-safe (the baseline) on ``workers`` processes (default: the machine's
   cores), others one at a time. The parent process logs each answer the moment it arrives, so a
   crash or SIGKILL loses at most the videos in flight and ``resume`` finishes the rest exactly once.
   ``cancel`` (a threading.Event) or Ctrl-C stops scheduling and waits for the videos in flight.

The summary is counted from the store, not from counters, so it always agrees with what is stored
("cached: 12/12, model calls: 0"). ``output_dir`` also writes the run folder a cloud job writes
(reports/run_folder.py), which ``ghostprobe jobs ingest`` turns back into a run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.base import Engine, EngineIdentity, GenerationOptions
from engines.errors import EngineError, GhostProbeError
from reports import runs as R
from reports.store import Store
from webapp.predict import (SAMPLING_KEYS, Answer, Computed, Predictor, check_sampling, compute_in_worker,
                            early_workers, engine_spec, ensure_available, make_options, start_pool)

log = logging.getLogger(__name__)
Progress = Callable[[dict[str, Any]], None]


@dataclass
class VideoItem:
    video_id: str  # the library id (file name) or the file name of a scanned file
    path: str
    sha256: str | None = None
    selection: str = ""  # what the run's selection records for it (library id or absolute path)


class EvalRun(str):
    """The run id (a plain ``str``) carrying the summary of this invocation in ``.summary``."""

    summary: dict[str, Any]

    def __new__(cls, run_id: str, summary: dict[str, Any]):
        obj = super().__new__(cls, run_id)
        obj.summary = summary
        return obj


# -- selecting videos --------------------------------------------------------------------------------
def _library_index(store: Store) -> tuple[dict[str, dict], dict[str, dict]]:
    rows = store.query("SELECT video_id, path, sha256 FROM videos")
    return {r["video_id"]: r for r in rows}, {R.video_key(r["video_id"]): r for r in rows}


def scan_dir(videos_dir: str | Path) -> list[VideoItem]:
    from engines.video import VIDEO_EXTENSIONS, is_frame_folder

    d = Path(videos_dir).expanduser()
    if not d.is_dir():
        raise R.RunError(f"{d} is not a folder of videos.")
    items = []
    for p in sorted(d.iterdir(), key=lambda p: p.name):
        if p.name.startswith("."):
            continue
        if (p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS) or (p.is_dir() and is_frame_folder(p)):
            items.append(VideoItem(video_id=p.name, path=str(p.resolve()), selection=str(p.resolve())))
    return items


def resolve_videos(store: Store, *, video_ids: list[str] | None = None, videos_dir: str | Path | None = None,
                   label_set: str | None = None, missing: list[str] | None = None) -> list[VideoItem]:
    """The videos to run: ids from the library (or a scanned folder), else every labelled library video.
    Labelled videos that are not in the library are appended to ``missing`` (when given)."""
    if videos_dir is not None:
        items = scan_dir(videos_dir)
        if video_ids:
            want = {R.video_key(v): v for v in video_ids}
            items = [it for it in items if R.video_key(it.video_id) in want]
            missing = sorted(set(want) - {R.video_key(it.video_id) for it in items})
            if missing:
                raise R.RunError(f"No video in {videos_dir} matches {', '.join(want[m] for m in missing[:5])}.")
        if not items:
            raise R.RunError(f"No video in {videos_dir} matched; it holds no {', '.join(sorted(_exts()))} files.")
        return items
    exact, by_key = _library_index(store)
    if video_ids:
        items, unknown = [], []
        for v in video_ids:
            row = exact.get(v) or by_key.get(R.video_key(v))
            if row is None:
                unknown.append(v)
            else:
                items.append(VideoItem(row["video_id"], row["path"], row["sha256"], selection=row["video_id"]))
        if unknown:
            raise R.RunError(f"No video in the library matches {', '.join(unknown[:5])}"
                             f"{' and more' if len(unknown) > 5 else ''}; `ghostprobe library list` indexes the library.")
        seen, unique = set(), []
        for it in items:
            if it.video_id not in seen:
                seen.add(it.video_id)
                unique.append(it)
        return unique
    if not label_set:
        raise R.RunError("Choose videos: a label set, a list of video ids, or a folder.")
    labelled = [r["video_id"] for r in store.query(
        "SELECT video_id FROM labels WHERE label_set = ? ORDER BY video_id", [label_set])]
    items = []
    for v in labelled:
        row = exact.get(v) or by_key.get(R.video_key(v))
        if row is not None:
            items.append(VideoItem(row["video_id"], row["path"], row["sha256"], selection=row["video_id"]))
        elif missing is not None:
            missing.append(v)
    if not items:
        raise R.RunError(f"None of the {len(labelled)} videos of label set '{label_set}' is in the library; "
                         "add them to the library (`ghostprobe library list` indexes it) or pass --videos DIR.")
    return items


def _exts() -> set[str]:
    from engines.video import VIDEO_EXTENSIONS

    return set(VIDEO_EXTENSIONS)


def _items_from_selection(store: Store, selection: list[str]) -> list[VideoItem]:
    exact, by_key = _library_index(store)
    items = []
    for s in selection:
        row = exact.get(s)
        if row is not None:
            items.append(VideoItem(row["video_id"], row["path"], row["sha256"], selection=s))
        elif os.path.isabs(s):
            items.append(VideoItem(Path(s).name, s, None, selection=s))
        else:
            row = by_key.get(R.video_key(s))
            items.append(VideoItem(row["video_id"], row["path"], row["sha256"], selection=s) if row else
                         VideoItem(s, "", None, selection=s))
    return items


# -- plan -------------------------------------------------------------------------------------------
@dataclass
class Plan:
    run_id: str
    engine: Engine
    predictor: Predictor
    items: list[VideoItem]
    todo: list[VideoItem]
    id_map: dict[str, str]
    label_set: str | None
    planned: int
    missing: list[str]
    workers: int
    mode: str  # serial | threads | processes
    template: Any = None
    resumed: bool = False
    writer: Any = None  # reports.run_folder.RunFolderWriter when output_dir is given
    location_defaulted: bool = False
    first_response_id: int = 0
    pool: Any = None  # processes: the worker pool, started while the run was planned

    def pred_id(self, it: VideoItem) -> str:
        return self.id_map.get(R.video_key(it.video_id), it.video_id)


def _whole(value: Any, what: str, low: int = 1) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise R.RunError(f"{what} must be a whole number, not {value!r}.") from None
    if n != value and not isinstance(value, str) and float(value) != n:
        raise R.RunError(f"{what} must be a whole number, not {value!r}.")
    if n < low:
        raise R.RunError(f"{what} must be {low} or more, not {n}.")
    return n


def _template_for(store: Store, prompt_ref: str | None, prompt_hash: str | None) -> Any:
    """The prompt a run uses: by ref, or for a resume by the hash it recorded — from the prompt files,
    else from the text stored in the database (so a deleted YAML file does not stop a resume)."""
    import yaml

    from prompts import PromptLibrary, PromptTemplate
    from reports.responses import prompt_text

    lib = PromptLibrary.load(strict=False)
    if prompt_hash:
        try:
            return lib.get(prompt_hash)
        except GhostProbeError:
            row = prompt_text(store, prompt_hash)
            if row is None:
                raise R.RunError(f"The run's prompt {prompt_hash[:12]} is neither in the prompt files nor in the "
                                 "database; it cannot be resumed.") from None
            body = "\n".join(line for line in row["body"].splitlines() if not line.startswith("# "))
            return PromptTemplate.from_dict(yaml.safe_load(body))
    return lib.get(prompt_ref) if prompt_ref else lib.detect_default()


def _identity_conflict(recorded: dict[str, Any] | None, now: EngineIdentity) -> str | None:
    if not recorded:
        return None
    cur = now.to_dict()
    for k in ("engine", "model", "revision", "endpoint", "video_mode", "dtype", "attention", "prompt_hash"):
        a, b = recorded.get(k), cur.get(k)
        if a is not None and b is not None and a != b:
            return f"{k} was '{a}' and is now '{b}'"
    return None


def _location(engine: Engine, location: str | None, recorded: str | None = None) -> tuple[str | None, bool, int]:
    loc = engine.cost_location()
    if recorded is not None:
        return recorded, False, loc.instances
    if location:
        return location, False, loc.instances
    from engines.settings import env as _env

    env = (_env("GHOSTPROBE_LOCATION") or "").strip()
    if env:
        return env, False, loc.instances
    return loc.location, loc.defaulted, loc.instances


def plan_run(store: Store, *, engine_name: str | None = None, model: str | None = None,
             label_set: str | None = None, video_ids: list[str] | None = None,
             videos_dir: str | Path | None = None, prompt_ref: str | None = None,
             options: GenerationOptions | dict[str, Any] | None = None, sampling: dict[str, Any] | None = None,
             concurrency: int = 1, workers: int | None = None, resume: str | None = None,
             location: str | None = None, instances: int | None = None, name: str | None = None,
             engine: Engine | None = None, retry_errors: bool = False, use_cache: bool = True,
             output_dir: str | Path | None = None, pool: Any = None) -> Plan:
    """Validate, resolve and create (or re-open) a run. Nothing is stored when anything is wrong.

    ``pool``: worker processes the caller started for ``engine`` (:func:`webapp.predict.start_pool`, before
    its own imports): the run uses them when they fit it; else, and whenever planning fails, they are shut
    down here."""
    try:
        return _plan_run(store, engine_name=engine_name, model=model, label_set=label_set, video_ids=video_ids,
                         videos_dir=videos_dir, prompt_ref=prompt_ref, options=options, sampling=sampling,
                         concurrency=concurrency, workers=workers, resume=resume, location=location,
                         instances=instances, name=name, engine=engine, retry_errors=retry_errors,
                         use_cache=use_cache, output_dir=output_dir, given_pool=pool)
    except BaseException:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        raise


def _plan_run(store: Store, *, engine_name, model, label_set, video_ids, videos_dir, prompt_ref, options, sampling,
              concurrency, workers, resume, location, instances, name, engine, retry_errors, use_cache, output_dir,
              given_pool) -> Plan:
    concurrency = _whole(concurrency if concurrency is not None else 1, "Concurrency")
    if workers is not None:
        workers = _whole(workers, "The number of workers")
    if instances is not None:
        instances = _whole(instances, "The number of instances")
    run: dict[str, Any] | None = None
    missing: list[str] = []
    if resume:
        run = R.get_run(store, resume)
        if run["status"] == "imported":
            raise R.RunError(f"Run {run['run_id']} was imported from a file; there is nothing to resume.")
        for given, recorded, what in ((engine_name, run["engine"], "engine"), (model, run["model"], "model"),
                                      (label_set, run["label_set"], "label set")):
            if given is not None and given != recorded:
                raise R.RunError(f"Run {run['run_id']} used {what} '{recorded}', not '{given}'; resume it as it was.")
        engine_name, label_set = run["engine"], run["label_set"]
        model = model if model is not None else run["model"]
        opts = make_options({k: v for k, v in (run.get("options") or {}).items() if k in GenerationOptions.__dataclass_fields__})
        run_sampling = {k: v for k, v in (run.get("sampling") or {}).items()}
        items = _items_from_selection(store, list(run.get("selection") or []))
        missing = list(run.get("missing_ids") or [])
    else:
        if not engine_name and engine is None:
            raise R.RunError("Choose an engine, e.g. --engine baseline.")
        if label_set:
            R.require_label_set(store, label_set)
        opts = make_options(options)
        run_sampling = None
        items = None  # resolved once the engine and its settings are known to be right

    if engine is None:
        from engines.registry import get_engine

        engine = get_engine(engine_name, model=model or None)
    engine_name = engine_name or engine.name
    ensure_available(engine)
    if run_sampling is None:
        bad = sorted(set(sampling or {}) - set(engine.default_sampling or {}) - set(SAMPLING_KEYS))
        if bad:
            raise R.RunError(f"Unknown sampling setting {', '.join(bad)}; use {', '.join(SAMPLING_KEYS)}.")
        run_sampling = {**dict(engine.default_sampling or {}), **(sampling or {})}
    run_sampling = check_sampling(run_sampling)

    template = None
    if engine.takes_prompt:
        template = _template_for(store, prompt_ref, run.get("prompt_hash") if run else None)
        if template.kind != "detect":
            raise R.RunError(f"Prompt {template.ref} is a {template.kind} prompt; pick a detect prompt.")
    elif prompt_ref and not resume:
        raise R.RunError(f"Engine {engine.name} is a detector and takes no prompt; leave the prompt out.")

    # remote engines: N requests at once on threads; process-safe CPU engines: one process per core
    if engine.remote:
        workers, mode = workers or concurrency, "threads"
    elif engine.process_safe:
        workers, mode = workers or (os.cpu_count() or 1), "processes"
    else:
        workers, mode = 1, "serial"
    # Worker processes start now: a spawned worker takes ~0.5 s to start Python, import and warm up
    # its engine, which runs while the rest of the run is planned (videos resolved and hashed, the run
    # created) instead of after it (bench/bench_baseline.py). Shut down if planning fails, or if the
    # run turns out to need fewer processes; more workers than cores wait until the videos are counted.
    early = mode == "processes" and early_workers(engine, workers) > 0
    spec = engine_spec(engine)
    pool = given_pool
    if pool is not None and not (early and getattr(pool, "gp_spec", None) == spec
                                 and getattr(pool, "gp_workers", None) == workers):
        pool.shutdown(wait=False, cancel_futures=True)  # started for another engine or size: not this run's
        pool = None
    if pool is None and early:
        pool = start_pool(workers, spec)
    try:
        if items is None:
            items = resolve_videos(store, video_ids=video_ids, videos_dir=videos_dir, label_set=label_set,
                                   missing=missing if not video_ids and videos_dir is None else None)
        predictor = Predictor(store, engine, sampling=run_sampling, options=opts, template=template,
                              use_cache=use_cache)  # describe(): may ask a server which model it serves
        identity = predictor.identity
        workers = min(workers, max(1, len(items)))
        if workers == 1:
            mode = "serial"
        if pool is not None and mode != "processes":
            pool.shutdown(wait=False, cancel_futures=True)
            pool = None

        writer_manifest = None
        if resume:
            assert run is not None
            conflict = _identity_conflict(run.get("identity"), identity)
            if conflict:
                raise R.RunError(f"Run {run['run_id']} cannot be resumed as it was: the engine's {conflict}; "
                                 "start a new run.")
            run_id = run["run_id"]
            loc_default = False
            R.set_run_status(store, run_id, "running")
            planned = int(run.get("planned") or len(items) + len(missing))
        else:
            loc, loc_default, inst = _location(engine, location)
            planned = len(items) + len(missing)
            run_id = R.create_run(
                store, engine=engine_name, model=identity.model, revision=identity.revision,
                prompt=template if template is not None else None, options=opts.to_dict() if engine.takes_prompt else {},
                sampling=run_sampling, label_set=label_set, selection=[it.selection for it in items], location=loc,
                instances=instances or inst, name=name, engine_kind=identity.kind, identity=identity,
                endpoint=identity.endpoint, planned=planned, missing=missing,
                output_dir=str(Path(output_dir).resolve()) if output_dir else None)
        writer = None
        if output_dir:
            from reports.run_folder import RunFolderWriter

            fresh = R.get_run(store, run_id)
            writer_manifest = {
                "run_id": run_id, "identity": identity.to_dict(),
                "prompt": ({"ref": template.ref, "hash": template.hash, "text": template.to_yaml()}
                           if template is not None else None),
                "label_set": label_set, "selection": [it.selection for it in items], "sampling": run_sampling,
                "options": opts.to_dict(), "planned": planned, "location": fresh.get("location"),
                "instances": fresh.get("instances") or 1}
            try:
                writer = RunFolderWriter(output_dir, writer_manifest)
            except Exception:
                if not resume:  # nothing was answered yet: the run is not kept
                    _drop_new_run(store, run_id)
                raise

        id_map = R.label_id_map(store, label_set)
        done = R.done_video_ids(store, run_id, include_errors=not retry_errors)
        plan = Plan(run_id=run_id, engine=engine, predictor=predictor, items=items, todo=[], id_map=id_map,
                    label_set=label_set, planned=planned, missing=missing, workers=workers, mode=mode,
                    template=template, resumed=bool(resume), writer=writer, location_defaulted=loc_default,
                    pool=pool)
        plan.todo = [it for it in items if plan.pred_id(it) not in done]
        plan.first_response_id = int(store.scalar("SELECT coalesce(max(id), 0) FROM responses") or 0)
        return plan
    except BaseException:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        raise

def _drop_new_run(store: Store, run_id: str) -> None:
    with store.write() as cur:
        cur.execute("DELETE FROM runs WHERE run_id = ?", [run_id])


# -- one video -------------------------------------------------------------------------------------------
def _missing_file(plan: Plan, it: VideoItem) -> Computed | None:
    from engines.base import CallRecord
    from engines.types import Verdict

    if it.path:
        return None
    msg = f"Video {it.video_id} is no longer in the library."
    return Computed(plan.pred_id(it), Verdict.error(msg), CallRecord(engine=plan.engine.name), error=msg,
                    failed="video")


def predict_one(plan: Plan, it: VideoItem) -> Answer:
    """Answer one video of the plan through the prediction core (logged; errors become error answers)."""
    started = time.perf_counter()
    gone = _missing_file(plan, it)
    if gone is not None:
        return plan.predictor.record(gone, kind="eval", started=started, run_id=plan.run_id)
    return plan.predictor.predict(it.path, plan.pred_id(it), kind="eval", run_id=plan.run_id)


def _after(plan: Plan, ans: Answer, state: dict[str, Any]) -> None:
    """What follows each logged answer: the run folder, the location a local engine really ran on."""
    if plan.writer is not None:
        from reports.run_folder import make_record

        plan.writer.add(make_record(ans.video_id, ans.sha256, ans.verdict, ans.call, error=ans.error,
                                    cached=ans.cached, extra={"response_id": ans.response_id}))
    if not state.get("identity_checked") and ans.verdict.status != "error" and not ans.cached:
        state["identity_checked"] = True
        changes: dict[str, Any] = {}
        if ans.identity.digest() != plan.predictor.identity.digest():
            changes.update(identity=ans.identity, model=ans.identity.model, revision=ans.identity.revision)
        if plan.location_defaulted and (ans.call.device or "").startswith("cuda"):
            changes["location"] = "local-cuda"
        if changes:
            R.update_run(plan.predictor.store, plan.run_id, **changes)


# -- scheduling -----------------------------------------------------------------------------------------
def schedule(plan: Plan, *, progress: Progress | None = None, cancel: threading.Event | None = None) -> dict[str, Any]:
    """Run the plan's videos; returns the summary (counted from the store)."""
    store = plan.predictor.store
    cancel = cancel or threading.Event()
    started = time.perf_counter()
    total = len(plan.items)
    skipped = total - len(plan.todo)

    def emit(ev: dict[str, Any]) -> None:
        if progress is not None:
            try:
                progress(ev)
            except Exception:  # a broken progress display must not stop the run
                pass

    ident = plan.predictor.identity
    emit({"event": "start", "run_id": plan.run_id, "total": total, "skipped": skipped, "todo": len(plan.todo),
          "engine": plan.engine.name, "model": ident.model, "prompt": plan.template.ref if plan.template else None,
          "label_set": plan.label_set, "workers": plan.workers, "mode": plan.mode, "planned": plan.planned,
          "missing": len(plan.missing), "missing_ids": plan.missing[:20], "identity": ident.to_dict()})
    state: dict[str, Any] = {}
    index = skipped
    interrupted = False
    failure: BaseException | None = None

    def finished(ans: Answer) -> None:
        nonlocal index
        _after(plan, ans, state)
        index += 1
        emit({"event": "video", "run_id": plan.run_id, "index": index, "total": total, "video_id": ans.video_id,
              "status": ans.verdict.status, "ghost_probing": ans.verdict.ghost_probing, "cached": ans.cached,
              "latency_s": ans.call.latency_s if ans.call else None, "wall_s": ans.wall_s,
              "error": ans.verdict.reason if ans.verdict.status == "error" else None})

    pending = deque(plan.todo)
    try:
        if plan.mode == "serial":
            try:
                while pending and not cancel.is_set():
                    finished(predict_one(plan, pending.popleft()))
            except KeyboardInterrupt:
                interrupted = True
                cancel.set()
        else:
            interrupted, failure = _run_pool(plan, pending, cancel, finished, emit)
    except BaseException as e:  # writing to the store failed: stop, keep what was written
        failure = e
    finally:
        if plan.pool is not None:  # started while planning, never used (a serial run cannot get here with one)
            plan.pool.shutdown(wait=False, cancel_futures=True)
            plan.pool = None
    left = len(pending)
    if failure is not None:
        R.finish_run(store, plan.run_id, "failed")
        if plan.writer is not None:
            plan.writer.close("failed", {})
        raise failure
    status = "cancelled" if (left or interrupted) and cancel.is_set() else "done"
    status = R.finish_run(store, plan.run_id, status)
    summary = _summary(plan, status, skipped, left, started)
    if plan.writer is not None:
        plan.writer.close(status, {k: v for k, v in summary.items() if k != "text"})
    emit({"event": "done", **summary})
    return summary


def _file_size(it: VideoItem) -> int:
    try:
        return os.stat(it.path).st_size if it.path else 0
    except (OSError, ValueError):
        return 0


def _run_pool(plan: Plan, pending: deque, cancel: threading.Event, finished: Callable[[Answer], None],
              emit: Progress) -> tuple[bool, BaseException | None]:
    """Threads (remote engines) or processes (CPU engines): the parent logs every answer."""
    interrupted, failure = False, None
    inflight: dict[Future, tuple[VideoItem, float]] = {}
    if plan.mode == "threads":
        pool: Any = ThreadPoolExecutor(max_workers=plan.workers, thread_name_prefix="eval")

        def submit(it: VideoItem) -> Future:
            return pool.submit(predict_one, plan, it)
    else:
        spec = engine_spec(plan.engine)
        pool = plan.pool or start_pool(plan.workers, spec)
        plan.pool = None  # shut down below, with this run

        def submit(it: VideoItem) -> Future:
            pr = plan.predictor
            sha = pr.current_sha256(it.path) if it.path else None
            hit = pr.lookup(sha)
            f: Future = Future()
            if hit is not None or not it.path:
                f.set_result(("hit", hit, sha))
                return f
            return pool.submit(compute_in_worker, spec, it.path, plan.pred_id(it), pr.sampling,
                               pr.options.to_dict(), sha)

    def collect(fs) -> None:
        nonlocal failure
        for f in fs:
            it, t0 = inflight.pop(f)
            try:
                out = f.result()
                if plan.mode == "threads":
                    ans = out
                elif isinstance(out, tuple) and out[0] == "hit":
                    _, hit, sha = out
                    if hit is not None:
                        ans = plan.predictor.record_hit(hit, plan.pred_id(it), sha, kind="eval", started=t0,
                                                        run_id=plan.run_id)
                    else:
                        ans = predict_one(plan, it)
                else:
                    ans = plan.predictor.record(out, kind="eval", started=t0, run_id=plan.run_id)
            except KeyboardInterrupt:
                raise
            except Exception as e:
                from concurrent.futures.process import BrokenProcessPool

                if isinstance(e, BrokenProcessPool) or not isinstance(e, GhostProbeError):
                    if isinstance(e, BrokenProcessPool):
                        failure = failure or EngineError("A worker process died; the videos in flight were not "
                                                         "answered (resume the run to finish them).")
                    else:
                        failure = failure or e
                    cancel.set()
                    continue
                failure = failure or e
                cancel.set()
                continue
            finished(ans)

    # processes: one video queued behind the one each worker computes, so a worker never waits for
    # the parent to log an answer and hash the next file; the longest files first, so the last
    # videos to finish are short ones and no core idles at the end (bench/bench_baseline.py)
    depth = plan.workers * 2 if plan.mode == "processes" else plan.workers
    if plan.mode == "processes":
        order = sorted(pending, key=_file_size, reverse=True)
        pending.clear()  # in place: the caller counts what is left in this deque
        pending.extend(order)
    try:
        try:
            while pending or inflight:
                while pending and len(inflight) < depth and not cancel.is_set():
                    it = pending.popleft()
                    inflight[submit(it)] = (it, time.perf_counter())
                if not inflight:
                    break
                done, _ = wait(list(inflight), timeout=0.25, return_when=FIRST_COMPLETED)
                collect(done)
        except KeyboardInterrupt:
            interrupted = True
            cancel.set()
            emit({"event": "cancelling", "run_id": plan.run_id, "in_flight": len(inflight)})
            try:
                done, _ = wait(list(inflight), timeout=600)
                collect(done)
            except KeyboardInterrupt:
                pass
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return interrupted, failure


def _summary(plan: Plan, status: str, skipped: int, left: int, started: float) -> dict[str, Any]:
    """Counted from the store: what this invocation logged for the run."""
    store = plan.predictor.store
    row = store.query(
        """SELECT count(*) AS processed, count(*) FILTER (WHERE cached) AS cached,
                  count(*) FILTER (WHERE status = 'ok') AS ok, count(*) FILTER (WHERE status = 'unparsed') AS unparsed,
                  count(*) FILTER (WHERE status = 'error') AS errors,
                  count(*) FILTER (WHERE NOT cached AND (status <> 'error' OR model_s IS NOT NULL)) AS model_calls
           FROM responses WHERE run_id = ? AND id > ?""", [plan.run_id, plan.first_response_id])[0]
    cov = R.coverage(store, plan.run_id)
    deterministic = plan.predictor.cacheable
    summary = {
        "run_id": plan.run_id, "status": status, "videos": len(plan.items), "skipped_done": skipped,
        "processed": int(row["processed"]), "not_started": left, "ok": int(row["ok"]),
        "unparsed": int(row["unparsed"]), "errors": int(row["errors"]), "cached": int(row["cached"]),
        "model_calls": int(row["model_calls"]), "deterministic": deterministic, "workers": plan.workers,
        "mode": plan.mode, "wall_s": time.perf_counter() - started, "planned": cov["planned"],
        "scored": cov["scored"], "errored": cov["errored"], "missing": cov["missing"],
        "not_predicted": cov["not_predicted"], "identity": plan.predictor.identity.to_dict(),
        "text": f"cached: {int(row['cached'])}/{int(row['processed'])}, model calls: {int(row['model_calls'])}",
    }
    if not deterministic:
        summary["text"] += " (cache off: options are not deterministic)"
    if cov["missing"] or cov["not_predicted"]:
        summary["text"] += f"; scored {cov['scored']}/{cov['planned']}"
        if cov["missing"]:
            summary["text"] += f" ({cov['missing']} not in the library)"
    return summary


# -- the runner ----------------------------------------------------------------------------------------
def run_eval(store: Store, *, engine_name: str | None = None, model: str | None = None,
             label_set: str | None = None, video_ids: list[str] | None = None,
             videos_dir: str | Path | None = None, prompt_ref: str | None = None,
             options: GenerationOptions | dict[str, Any] | None = None, sampling: dict[str, Any] | None = None,
             concurrency: int = 1, resume: str | None = None, location: str | None = None,
             instances: int | None = None, name: str | None = None, progress: Progress | None = None,
             cancel: threading.Event | None = None, engine: Engine | None = None, retry_errors: bool = False,
             use_cache: bool = True, workers: int | None = None, output_dir: str | Path | None = None,
             pool: Any = None) -> EvalRun:
    """Run (or resume) an evaluation and return its run id (an :class:`EvalRun` with ``.summary``);
    ``pool``: see :func:`plan_run`."""
    plan = plan_run(store, engine_name=engine_name, model=model, label_set=label_set, video_ids=video_ids,
                    videos_dir=videos_dir, prompt_ref=prompt_ref, options=options, sampling=sampling,
                    concurrency=concurrency, workers=workers, resume=resume, location=location, instances=instances,
                    name=name, engine=engine, retry_errors=retry_errors, use_cache=use_cache, output_dir=output_dir,
                    pool=pool)
    return EvalRun(plan.run_id, schedule(plan, progress=progress, cancel=cancel))
