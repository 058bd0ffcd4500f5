"""The evaluation runner: an engine + a prompt version over a selection of videos, scored later.

What it guarantees:

- Each prediction is written in its own transaction the moment its video finishes; a crash or
  SIGKILL loses at most the videos in flight, and ``resume`` finishes the rest without
  duplicates (predictions are keyed by (run_id, video_id)).
- A video that cannot be loaded, or an engine that fails on it, becomes a prediction with status
  "error" and the sentence — never a crash, never a silent "no".
- Deterministic settings (temperature 0) use the response cache keyed by everything that changes
  the answer (video sha256, engine, model, revision, prompt hash, options, sampling). A rerun of an
  unchanged run makes zero model calls and its summary says so ("cached: 12/12, model calls: 0").
- Remote engines run ``concurrency`` requests at once; local engines one at a time.
- ``cancel`` (a threading.Event) or Ctrl-C stops scheduling, waits for the videos in flight, and
  marks the run "cancelled"; ``resume`` continues it.
- Where it ran is recorded (``location``: the argument, else $GHOSTPROBE_LOCATION, else
  "local-cpu" / "local-cuda" as the engine reports its device, or "<engine>:<model>" for remote
  engines) so reports.costs can price it.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from engines.base import CallRecord, Engine, GenerationOptions
from engines.errors import EngineError, GhostProbeError
from engines.types import Verdict
from reports import runs as R
from reports.store import Store

SAMPLING_KEYS = ("num_frames", "fps", "max_side")
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


@dataclass
class _Outcome:
    item: VideoItem
    video_id: str
    verdict: Verdict
    call: CallRecord | None
    cached: bool
    model_called: bool
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)


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
                   label_set: str | None = None) -> list[VideoItem]:
    """The videos to run: ids from the library (or a scanned folder), else every labelled library video."""
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
    if not items:
        raise R.RunError(f"No video of label set '{label_set}' is in the library; index it with "
                         "`ghostprobe library list` or pass --videos DIR.")
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


# -- options ----------------------------------------------------------------------------------------
def make_options(options: GenerationOptions | dict[str, Any] | None) -> GenerationOptions:
    if options is None:
        return GenerationOptions()
    if isinstance(options, GenerationOptions):
        return options
    known = {f.name for f in fields(GenerationOptions)}
    bad = sorted(set(options) - known)
    if bad:
        raise R.RunError(f"Unknown generation option {', '.join(bad)}; known: {', '.join(sorted(known))}.")
    try:
        return GenerationOptions(**options)
    except TypeError as e:
        raise R.RunError(f"Bad generation options: {e}.") from None


def default_location(engine: Engine, model: str | None) -> tuple[str, bool]:
    """(location, defaulted): $GHOSTPROBE_LOCATION wins; remote engines name themselves."""
    env = os.environ.get("GHOSTPROBE_LOCATION", "").strip()
    if env:
        return env, False
    if engine.remote:
        return (f"{engine.name}:{model}" if model else engine.name), False
    return "local-cpu", True


def _one_sentence(e: BaseException, what: str) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, GhostProbeError):
        return msg
    return f"{what} ({type(e).__name__}: {msg})."


# -- the runner ----------------------------------------------------------------------------------------
def run_eval(store: Store, *, engine_name: str | None = None, model: str | None = None,
             label_set: str | None = None, video_ids: list[str] | None = None,
             videos_dir: str | Path | None = None, prompt_ref: str | None = None,
             options: GenerationOptions | dict[str, Any] | None = None, sampling: dict[str, Any] | None = None,
             concurrency: int = 1, resume: str | None = None, location: str | None = None, instances: int = 1,
             name: str | None = None, progress: Progress | None = None, cancel: threading.Event | None = None,
             engine: Engine | None = None, retry_errors: bool = False, use_cache: bool = True) -> EvalRun:
    """Run (or resume) an evaluation and return its run id (an :class:`EvalRun` with ``.summary``)."""
    from prompts import PromptLibrary

    cancel = cancel or threading.Event()
    started = time.perf_counter()
    if concurrency is None or int(concurrency) < 1:
        raise R.RunError("Concurrency must be 1 or more.")

    if resume:
        run = R.get_run(store, resume)
        if run["status"] == "imported":
            raise R.RunError(f"Run {run['run_id']} was imported from a file; there is nothing to resume.")
        for given, recorded, what in ((engine_name, run["engine"], "engine"), (model, run["model"], "model"),
                                      (label_set, run["label_set"], "label set")):
            if given is not None and given != recorded:
                raise R.RunError(f"Run {run['run_id']} used {what} '{recorded}', not '{given}'; resume it as it was.")
        run_id = run["run_id"]
        engine_name, model, label_set = run["engine"], run["model"], run["label_set"]
        opts = make_options({k: v for k, v in (run.get("options") or {}).items()
                             if k in {f.name for f in fields(GenerationOptions)}})
        run_sampling = {k: v for k, v in (run.get("sampling") or {}).items() if k in SAMPLING_KEYS}
        items = _items_from_selection(store, list(run.get("selection") or []))
        location, loc_default = run.get("location"), False
        instances = int(run.get("instances") or 1)
        prompt_hash = run.get("prompt_hash")
    else:
        if not engine_name and engine is None:
            raise R.RunError("Choose an engine, e.g. --engine baseline.")
        if label_set:
            R.require_label_set(store, label_set)
        opts = make_options(options)
        items = resolve_videos(store, video_ids=video_ids, videos_dir=videos_dir, label_set=label_set)
        run_sampling = None
        prompt_hash = None

    if engine is None:
        from engines.registry import get_engine

        engine = get_engine(engine_name, model=model)
    engine_name = engine_name or engine.name
    try:
        ok, why = engine.availability()
    except GhostProbeError as e:
        ok, why = False, str(e)
    if not ok:
        raise EngineError(why if why.endswith(".") else why + ".")
    model = model if model is not None else engine.model_id()
    try:
        revision = engine.revision()
    except Exception:  # a revision we cannot read stays unknown
        revision = None

    lib = PromptLibrary.load(strict=False)
    if resume:
        template = lib.get(prompt_hash) if prompt_hash else lib.get(prompt_ref or "") if prompt_ref else lib.detect_default()
    else:
        template = lib.get(prompt_ref) if prompt_ref else lib.detect_default()
    if run_sampling is None:
        run_sampling = {k: v for k, v in {**dict(engine.default_sampling or {}), **(sampling or {})}.items()
                        if k in SAMPLING_KEYS}
        bad = sorted(set(sampling or {}) - set(SAMPLING_KEYS))
        if bad:
            raise R.RunError(f"Unknown sampling setting {', '.join(bad)}; use {', '.join(SAMPLING_KEYS)}.")

    if not resume:
        if location:
            loc_default = False
        else:
            location, loc_default = default_location(engine, model)
        run_id = R.create_run(
            store, engine=engine_name, model=model, revision=revision, prompt=template,
            options=opts.to_dict(), sampling=run_sampling, label_set=label_set,
            selection=[it.selection for it in items], location=location, instances=instances, name=name)
    else:
        R.set_run_status(store, run_id, "running")

    id_map = R.label_id_map(store, label_set)

    def pred_id(it: VideoItem) -> str:
        return id_map.get(R.video_key(it.video_id), it.video_id)

    done = R.done_video_ids(store, run_id, include_errors=not retry_errors)
    todo = [it for it in items if pred_id(it) not in done]
    skipped = len(items) - len(todo)
    total = len(items)
    deterministic = opts.deterministic and use_cache
    opts_dict = opts.to_dict()
    workers = int(concurrency) if engine.remote else 1
    # engines whose detect is "chat, then parse the text" get cached text re-parsed on a hit
    reparse = type(engine).detect is Engine.detect
    state = {"location_checked": not loc_default}
    state_lock = threading.Lock()

    def emit(ev: dict[str, Any]) -> None:
        if progress is not None:
            try:
                progress(ev)
            except Exception:  # a broken progress display must not stop the run
                pass

    def work(it: VideoItem) -> _Outcome:
        t0 = time.perf_counter()
        vid = pred_id(it)
        sha = it.sha256
        key = None
        try:
            if not it.path:
                raise GhostProbeError(f"Video {it.video_id} is no longer in the library.")
            if deterministic:
                if sha is None:
                    from engines.video import sha256_file

                    sha = sha256_file(it.path)
                key = R.cache_key(sha256=sha, engine=engine_name, model=model, revision=revision,
                                  prompt_hash=template.hash, options=opts_dict, sampling=run_sampling)
                hit = R.cache_get(store, key)
                if hit is not None:
                    vd = {k: v for k, v in hit["verdict"].items() if k in {f.name for f in fields(Verdict)}}
                    verdict = Verdict(**vd)
                    if reparse and hit.get("answer"):
                        # the model's text is what was cached; read it with today's parser
                        from engines.verdict import parse

                        verdict = parse(hit["answer"])
                    call = CallRecord(engine=engine_name, model=model, revision=revision, latency_s=hit["latency_s"],
                                      prompt_tokens=hit["prompt_tokens"], completion_tokens=hit["completion_tokens"])
                    R.add_prediction(store, run_id, vid, sha, verdict, call, cached=True)
                    return _Outcome(it, vid, verdict, call, True, False, time.perf_counter() - t0)
            from engines.video import load_clip

            clip = load_clip(it.path, num_frames=run_sampling.get("num_frames"), fps=run_sampling.get("fps"),
                             max_side=run_sampling.get("max_side"))
            sha = sha or clip.sha256
        except Exception as e:  # the video could not be read: an error prediction, no model call
            verdict = Verdict.error(_one_sentence(e, f"Could not read {it.video_id}"))
            call = CallRecord(engine=engine_name, model=model, revision=revision, latency_s=0.0,
                              prompt_tokens=0, completion_tokens=0, extra={"model_called": False})
            R.add_prediction(store, run_id, vid, sha, verdict, call, cached=False)
            return _Outcome(it, vid, verdict, call, False, False, time.perf_counter() - t0)
        decode_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        try:
            from prompts import clip_variables

            messages = template.render(clip_variables(clip))
            res = engine.detect(clip, messages, opts)
            verdict, call = res.verdict, res.call
            if call is None:
                call = CallRecord(engine=engine_name, model=model)
            if call.latency_s is None:
                call.latency_s = time.perf_counter() - t1
        except Exception as e:  # the engine failed on this video: measured time, an error prediction
            verdict = Verdict.error(_one_sentence(e, f"{engine_name} failed on {it.video_id}"))
            call = CallRecord(engine=engine_name, model=model, revision=revision,
                              latency_s=time.perf_counter() - t1)
        call.decode_s = decode_s
        if not isinstance(verdict, Verdict):
            verdict = Verdict.error(f"{engine_name} returned no verdict for {it.video_id}.")
        R.add_prediction(store, run_id, vid, sha, verdict, call, cached=False)
        if key is not None and verdict.status != "error":
            R.cache_put(store, key, engine=engine_name, model=model, verdict=verdict, call=call)
        with state_lock:
            if not state["location_checked"] and verdict.status != "error":
                state["location_checked"] = True
                if (call.device or "").startswith("cuda"):
                    R.update_run(store, run_id, location="local-cuda")
        return _Outcome(it, vid, verdict, call, False, True, time.perf_counter() - t0)

    counts = {"ok": 0, "unparsed": 0, "error": 0, "cached": 0, "model_calls": 0}
    emit({"event": "start", "run_id": run_id, "total": total, "skipped": skipped, "todo": len(todo),
          "engine": engine_name, "model": model, "prompt": template.ref, "label_set": label_set,
          "workers": workers})
    pending = deque(todo)
    inflight: dict[Future, VideoItem] = {}
    index = skipped
    interrupted = False
    failure: BaseException | None = None

    def collect(fs) -> None:
        nonlocal index, failure
        for f in fs:
            it = inflight.pop(f)
            try:
                out = f.result()
            except BaseException as e:  # writing to the store failed: stop, keep what was written
                failure = failure or e
                cancel.set()
                continue
            index += 1
            st = out.verdict.status if out.verdict.status in counts else "unparsed"
            counts[st] += 1
            counts["cached"] += int(out.cached)
            counts["model_calls"] += int(out.model_called)
            emit({"event": "video", "run_id": run_id, "index": index, "total": total, "video_id": out.video_id,
                  "status": out.verdict.status, "ghost_probing": out.verdict.ghost_probing, "cached": out.cached,
                  "latency_s": out.call.latency_s if out.call else None, "wall_s": out.wall_s,
                  "error": out.verdict.reason if out.verdict.status == "error" else None})

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eval")
    try:
        try:
            while pending or inflight:
                while pending and len(inflight) < workers and not cancel.is_set():
                    it = pending.popleft()
                    inflight[pool.submit(work, it)] = it
                if not inflight:
                    break
                finished, _ = wait(list(inflight), timeout=0.25, return_when=FIRST_COMPLETED)
                collect(finished)
        except KeyboardInterrupt:
            interrupted = True
            cancel.set()
            emit({"event": "cancelling", "run_id": run_id, "in_flight": len(inflight)})
            finished, _ = wait(list(inflight))
            collect(finished)
    finally:
        pool.shutdown(wait=True)

    left = len(pending)
    if failure is not None:
        R.finish_run(store, run_id, "failed")
        raise failure
    status = "cancelled" if (left or interrupted) and cancel.is_set() else "done"
    R.finish_run(store, run_id, status)
    processed = index - skipped
    summary = {
        "run_id": run_id, "status": status, "videos": total, "skipped_done": skipped, "processed": processed,
        "not_started": left, "ok": counts["ok"], "unparsed": counts["unparsed"], "errors": counts["error"],
        "cached": counts["cached"], "model_calls": counts["model_calls"], "deterministic": deterministic,
        "workers": workers, "wall_s": time.perf_counter() - started,
        "text": f"cached: {counts['cached']}/{processed}, model calls: {counts['model_calls']}",
    }
    if not deterministic:
        summary["text"] += " (cache off: options are not deterministic)"
    emit({"event": "done", **summary})
    return EvalRun(run_id, summary)
