"""The prediction core: the one way a video becomes a logged answer.

``ghostprobe detect``, the Chat tab's 检测 and every evaluation video go through :class:`Predictor`:

1. **identity** — ``engine.describe()`` once, before the first call (a server is asked which model it
   serves when none is configured), joined with the options, sampling and — for engines that take a
   prompt — the prompt's hash into an :class:`engines.base.EngineIdentity`;
2. **hash** — the clip's own SHA-256 (``engines.video.sha256_file``: memoised by path, size and mtime,
   so a replaced file is hashed again);
3. **cache** — deterministic settings look the answer up by ``identity.cache_key(sha256)``; a hit is
   logged as a response of its own (``cached``, ``cached_from``) and no model is called;
4. **sample** — ``engines.video.load_clip(path, **sampling)`` (the last few clips kept in memory);
5. **call** — a detector's ``detect(clip, options)``, or a chat model's ``ask(clip, messages, options)``
   over the rendered prompt (engines.verdict.parse reads the text);
6. **check** — what the response reported as its model is compared with the identity; a mismatch is
   recorded in ``extra`` and the answer is also cached under what really answered;
7. **log** — one row in ``responses`` (reports.responses) with the latency split: ``decode_s`` measured
   here, the engine's own time as ``model_s``, ``latency_s`` end to end.

Steps 4–5 are :func:`compute`, which touches no database, so CPU engines can run it in worker
processes (:func:`compute_in_worker`) while the parent process logs. Failures are narrow: a video
that cannot be read or an engine error becomes an ``error`` answer with one sentence (logged, never a
"no"); anything else is logged with its traceback and also becomes an error answer.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engines.base import (CHAT, DETECTOR, Artifacts, CallRecord, Detection, Engine, EngineIdentity,
                          GenerationOptions)
from engines.errors import EngineError, GhostProbeError
from engines.redact import redact
from engines.types import Clip, Verdict

if TYPE_CHECKING:  # the store is the parent's: worker processes import this module without DuckDB
    from reports.store import Store

log = logging.getLogger(__name__)


def _rl() -> Any:
    """reports.responses, imported on first use (by the parent, which logs; never by a worker)."""
    from reports import responses

    return responses

SAMPLING_KEYS = ("num_frames", "fps", "max_side")
MAX_FRAMES = 512  # more frames than any video LLM takes; the decoder also caps pixels
VERDICT_KEYS = ("ghost_probing", "confidence", "danger_level", "object_type", "onset_s", "reason", "status", "raw")


class PredictionError(GhostProbeError):
    """A prediction that cannot be set up as asked (bad sampling, a prompt an engine cannot use …)."""


def one_sentence(e: BaseException, what: str | None = None) -> str:
    """The whole message of a user error, redacted; other errors as ``what (Type: message).``"""
    msg = redact(str(e).strip()) or type(e).__name__
    if isinstance(e, GhostProbeError) or what is None:
        return msg if msg.endswith((".", "。", "?", "？", "!", "！")) else msg + "."
    first = msg.splitlines()[0]
    return f"{what} ({type(e).__name__}: {first})."


# -- engines and settings -------------------------------------------------------------------------------
def open_engine(name: str, model: str | None = None, **config: Any) -> Engine:
    """The engine ``name`` (with ``model`` or its configured default), or EngineError with why it cannot run."""
    from engines.registry import get_engine

    return ensure_available(get_engine(name, model=(model or "").strip() or None, **config))


def ensure_available(engine: Engine) -> Engine:
    """``engine`` itself, or EngineError with the one sentence why it cannot run here."""
    name = engine.name
    try:
        ok, reason = engine.availability()
    except GhostProbeError as e:
        ok, reason = False, str(e)
    except Exception as e:  # an availability check must never take the caller down
        ok, reason = False, f"The availability check of engine {name} failed: {one_sentence(e)}"
    if not ok:
        raise EngineError(redact(reason if reason.endswith(".") else reason + "."))
    return engine


def check_sampling(sampling: dict[str, Any]) -> dict[str, Any]:
    """Validate a sampling dict before anything is created (one sentence on the first bad value)."""
    import math

    s = dict(sampling)
    n, fps, side = s.get("num_frames"), s.get("fps"), s.get("max_side")
    if n is not None:
        try:
            n = int(n)
        except (TypeError, ValueError):
            raise PredictionError(f"The number of frames must be a whole number, not {s['num_frames']!r}.") from None
        if n < 1:
            raise PredictionError("The number of frames must be at least 1.")
        if n > MAX_FRAMES:
            raise PredictionError(f"The number of frames must be at most {MAX_FRAMES}, not {n}.")
        s["num_frames"] = n
    if fps is not None:
        try:
            fps = float(fps)
        except (TypeError, ValueError):
            raise PredictionError(f"The sampling rate must be a number of frames per second, not {s['fps']!r}.") from None
        if not math.isfinite(fps) or fps <= 0:
            raise PredictionError(f"The sampling rate must be a positive number of frames per second, not {s['fps']!r}.")
        s["fps"] = fps
    if side is not None:
        try:
            side = int(side)
        except (TypeError, ValueError):
            raise PredictionError(f"max_side must be a whole number of pixels, not {s['max_side']!r}.") from None
        if side < 16:
            raise PredictionError(f"max_side must be at least 16 pixels, not {side}.")
        s["max_side"] = side
    if s.get("num_frames") is None and s.get("fps") is None:
        s["num_frames"] = 16
    return s


def sampling_for(engine: Engine | type[Engine], frames: int | None = None, max_side: int | None = None,
                 overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The engine's default sampling with the caller's changes; ``frames`` switches to that many
    uniformly spaced frames. Validated (PredictionError)."""
    s = dict(getattr(engine, "default_sampling", None) or {})
    for k, v in (overrides or {}).items():
        s[k] = v
    if frames is not None:
        s["num_frames"], s["fps"] = frames, None
    if max_side is not None:
        s["max_side"] = max_side
    return check_sampling(s)


def make_options(options: GenerationOptions | dict[str, Any] | None) -> GenerationOptions:
    from dataclasses import fields

    if options is None:
        return GenerationOptions()
    if isinstance(options, GenerationOptions):
        opts = options
    else:
        known = {f.name for f in fields(GenerationOptions)}
        bad = sorted(set(options) - known)
        if bad:
            raise PredictionError(f"Unknown generation option {', '.join(bad)}; known: {', '.join(sorted(known))}.")
        try:
            opts = GenerationOptions(**options)
        except TypeError as e:
            raise PredictionError(f"Bad generation options: {e}.") from None
    if not isinstance(opts.max_new_tokens, int) or opts.max_new_tokens < 1:
        raise PredictionError(f"max_new_tokens must be a whole number of at least 1, not {opts.max_new_tokens!r}.")
    if not (0.0 <= float(opts.temperature) <= 5.0):
        raise PredictionError(f"temperature must be between 0 and 5, not {opts.temperature!r}.")
    if not (0.0 < float(opts.top_p) <= 1.0):
        raise PredictionError(f"top_p must be above 0 and at most 1, not {opts.top_p!r}.")
    if not (float(opts.timeout_s) > 0):
        raise PredictionError(f"timeout_s must be a positive number of seconds, not {opts.timeout_s!r}.")
    return opts


# -- clips ---------------------------------------------------------------------------------------------
_CLIPS: OrderedDict[tuple, Clip] = OrderedDict()
_CLIPS_LOCK = threading.Lock()
_CLIPS_MAX = 4


def load_clip_timed(path: str | Path, sampling: dict[str, Any]) -> tuple[Clip, float]:
    """Sample the video as ``sampling`` says; returns the clip and the seconds this call took.

    The last few clips are kept in memory keyed by path, size, mtime and sampling, so a follow-up
    question about the same video does not decode it again (a changed file is decoded afresh)."""
    from engines.video import load_clip

    t0 = time.perf_counter()
    try:
        st = os.stat(path)
        key: tuple | None = (str(path), st.st_size, st.st_mtime_ns, tuple(sorted(sampling.items())))
    except (OSError, ValueError, TypeError):
        key = None  # load_clip says what is wrong with the path
    if key is not None:
        with _CLIPS_LOCK:
            hit = _CLIPS.get(key)
            if hit is not None:
                _CLIPS.move_to_end(key)
                return hit, time.perf_counter() - t0
    clip = load_clip(path, **{k: v for k, v in sampling.items() if v is not None})
    if key is not None:
        with _CLIPS_LOCK:
            _CLIPS[key] = clip
            while len(_CLIPS) > _CLIPS_MAX:
                _CLIPS.popitem(last=False)
    return clip, time.perf_counter() - t0


def video_id_of(path: str | Path) -> str:
    return Path(str(path).rstrip("/\\")).name


# -- one prediction ------------------------------------------------------------------------------------
@dataclass
class Computed:
    """What :func:`compute` produced (picklable: crosses process boundaries)."""

    video_id: str
    verdict: Verdict
    call: CallRecord
    artifacts: Artifacts = field(default_factory=Artifacts)
    sha256: str | None = None
    question: str | None = None
    model_called: bool = False
    error: str | None = None  # the one sentence when the answer is an error
    failed: str | None = None  # video | engine | bug: the error came from an exception, not from the engine's answer


@dataclass
class Answer:
    """One logged answer."""

    response_id: int
    video_id: str
    verdict: Verdict
    call: CallRecord
    artifacts: Artifacts
    identity: EngineIdentity
    sha256: str | None
    cached: bool
    model_called: bool
    question: str | None
    wall_s: float
    turn: int | None = None
    error: str | None = None
    cached_from: int | None = None
    failed: str | None = None  # video | engine | bug (see Computed)


def _render(template: Any, clip: Clip, video_id: str) -> list[dict[str, str]]:
    from prompts import clip_variables

    return template.render(clip_variables(clip, Path(video_id).stem))


def compute(engine: Engine, path: str | Path, video_id: str, sampling: dict[str, Any], options: GenerationOptions,
            template: Any = None, sha256: str | None = None) -> Computed:
    """Sample and call: no database. Every failure becomes an error answer with one sentence."""
    try:
        clip, decode_s = load_clip_timed(path, sampling)
    except GhostProbeError as e:
        msg = one_sentence(e)
        return Computed(video_id, Verdict.error(msg), CallRecord(engine=engine.name), sha256=sha256, error=msg,
                        failed="video")
    except Exception as e:
        msg = one_sentence(e, f"Could not read {video_id}")
        log.warning("reading %s failed", video_id, exc_info=e)
        return Computed(video_id, Verdict.error(msg), CallRecord(engine=engine.name), sha256=sha256, error=msg,
                        failed="video")
    sha = clip.sha256 or sha256
    question = None
    t1 = time.perf_counter()
    try:
        if DETECTOR in engine.kinds:
            det = engine.detect(clip, options)
        elif CHAT in engine.kinds:
            if template is None:
                raise PredictionError(f"Engine {engine.name} needs a prompt to detect with.")
            messages = _render(template, clip, video_id)
            question = messages[-1]["content"] if messages else None
            det = engine.ask(clip, messages, options)
        else:
            raise PredictionError(f"Engine {engine.name} cannot answer one video at a time; submit it as a job.")
        if not isinstance(det, Detection) or not isinstance(det.verdict, Verdict):
            raise PredictionError(f"Engine {engine.name} returned no verdict for {video_id}.")
    except GhostProbeError as e:
        msg = one_sentence(e)
        call = engine.last_call or CallRecord(engine=engine.name)
        call.decode_s = decode_s
        if call.latency_s is None:
            call.latency_s = time.perf_counter() - t1
        return Computed(video_id, Verdict.error(msg), call, sha256=sha, question=question, model_called=True,
                        error=msg, failed="engine")
    except Exception as e:
        msg = one_sentence(e, f"{engine.name} failed on {video_id}")
        log.error("engine %s failed on %s", engine.name, video_id, exc_info=e)
        call = CallRecord(engine=engine.name, latency_s=time.perf_counter() - t1, decode_s=decode_s)
        return Computed(video_id, Verdict.error(msg), call, sha256=sha, question=question, model_called=True,
                        error=msg, failed="bug")
    call = det.call or CallRecord(engine=engine.name)
    if call.latency_s is None:
        call.latency_s = time.perf_counter() - t1
    call.decode_s = decode_s
    err = det.verdict.reason if det.verdict.status == "error" else None
    return Computed(video_id, det.verdict, call, det.artifacts or Artifacts(), sha, question, True, err)


_WORKER_ENGINES: dict[tuple, Engine] = {}


def engine_spec(engine: Engine) -> tuple[str, str | None, dict[str, Any]]:
    """What a worker process needs to build ``engine`` again: (name, model, config)."""
    return (engine.name, engine.model, dict(engine.config or {}))


def early_workers(engine: Engine, workers: int | None) -> int:
    """How many worker processes an evaluation with ``engine`` starts before its videos are counted
    (0: none; a process-safe CPU engine with 2 … cores workers, the default being one per core)."""
    if engine.remote or not engine.process_safe:
        return 0
    cores = os.cpu_count() or 1
    n = workers if workers is not None else cores
    return n if 1 < n <= cores else 0


def start_pool(workers: int, spec: tuple) -> Any:
    """A pool of ``workers`` spawned processes, each building and warming up the engine of ``spec`` at once.

    ProcessPoolExecutor starts its processes on demand: they are all started now (their interpreters,
    imports and engine warm-up run while the parent plans, hashes and queues). This module is light
    enough for ``ghostprobe eval`` to call this before it imports the store (bench/bench_baseline.py)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=worker_init,
                               initargs=(max(1, (os.cpu_count() or 1) // workers), spec))
    pool.gp_spec, pool.gp_workers = spec, workers  # what plan_run checks before it uses a pool given to it
    for _ in range(workers):
        pool.submit(os.getpid)
    return pool


def worker_init(threads: int = 0, spec: tuple | None = None) -> None:
    """Worker processes leave Ctrl-C to the parent, which stops scheduling and lets them finish.

    ``threads``: this worker's share of the cores (cores // workers, at least 1): its decoders and
    OpenCV use no more threads than that, so the workers do not fight over the cores. ``spec``: the
    engine to build and warm up now (imports, models), before the first video arrives. A worker imports
    this module, the engines and nothing of the store (no DuckDB: ~0.1 s less for each to start)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent()
    if threads:
        from engines.video import limit_threads

        limit_threads(threads)
    if spec is not None:
        try:
            worker_engine(spec, warm=True)
        except Exception:  # the first video builds it again and records why it failed
            pass


def _exit_with_parent() -> None:
    """End this worker when its parent process ends, however it ended. A pool's workers wait on a
    queue whose write end they hold themselves, so a parent killed (or exiting without shutting its
    pool down) would otherwise leave them running for ever, holding their memory."""
    import multiprocessing as mp

    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # returns when the parent's sentinel closes: it has exited
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def compute_in_worker(spec: tuple[str, str | None, dict[str, Any]], path: str, video_id: str,
                      sampling: dict[str, Any], options: dict[str, Any], sha256: str | None) -> Computed:
    """:func:`compute` in a worker process: the engine is built once per process from (name, model, config)."""
    return compute(worker_engine(spec), path, video_id, sampling, GenerationOptions(**options), None, sha256)


def worker_engine(spec: tuple[str, str | None, dict[str, Any]], warm: bool = False) -> Engine:
    """This worker process's engine for ``spec`` (built once); ``warm``: also run its :meth:`Engine.warm_up`."""
    from engines.registry import get_engine

    key = (spec[0], spec[1], tuple(sorted((spec[2] or {}).items())))
    eng = _WORKER_ENGINES.get(key)
    if eng is None:
        eng = _WORKER_ENGINES[key] = get_engine(spec[0], model=spec[1], **(spec[2] or {}))
    if warm:
        eng.warm_up()
    return eng


def _artifact_sinks(store: Store, response_id: int, artifacts: Artifacts, video_id: str) -> None:
    """Per-frame scores and boxes go to their own tables when a module for them is installed (AI-VAD)."""
    if artifacts is None or (not artifacts.boxes and artifacts.maps is None and "anomaly" not in artifacts.tracks):
        return
    try:
        from reports import vad as V  # noqa: N812
    except ImportError:
        return
    save = getattr(V, "save_artifacts", None)
    if callable(save):
        save(store, response_id, artifacts)


class Predictor:
    """An engine with fixed sampling, options and prompt, answering one video at a time into the log."""

    def __init__(self, store: Store, engine: Engine, *, sampling: dict[str, Any],
                 options: GenerationOptions | None = None, template: Any = None, use_cache: bool = True,
                 described: dict[str, Any] | None = None, identity: EngineIdentity | None = None):
        self.store = store
        self.engine = engine
        self.options = options or GenerationOptions()
        self.sampling = dict(sampling)
        self.template = template if engine.takes_prompt else None
        if engine.takes_prompt and template is None:
            raise PredictionError(f"Engine {engine.name} takes a prompt; choose one.")
        if self.template is not None and getattr(self.template, "kind", "detect") != "detect":
            raise PredictionError(f"Prompt {self.template.ref} is a {self.template.kind} prompt; pick a detect prompt.")
        if identity is None:
            described = described if described is not None else engine.describe()
            identity = engine.identity(self.options, self.sampling,
                                       self.template.hash if self.template is not None else None, described=described)
        self.identity = identity
        # a detector answers the same clip the same way; a chat model only with greedy decoding
        self.cacheable = bool(use_cache) and (DETECTOR in engine.kinds or self.options.deterministic)
        if self.template is not None:
            _rl().save_prompt(store, self.template)

    # -- the pieces ------------------------------------------------------------------------------
    def current_sha256(self, path: str | Path) -> str | None:
        from engines.video import sha256_file

        try:
            return sha256_file(path)
        except Exception:  # load_clip will say what is wrong with the path
            return None

    def lookup(self, sha256: str | None) -> dict[str, Any] | None:
        if not self.cacheable or not sha256:
            return None
        return _rl().cache_lookup(self.store, self.identity.cache_key(sha256))

    def _fields(self, identity: EngineIdentity) -> dict[str, Any]:
        return {"engine_kind": identity.kind, "model": identity.model, "revision": identity.revision,
                "endpoint": identity.endpoint, "identity": identity.to_dict(), "identity_hash": identity.digest(),
                "prompt_hash": identity.prompt_hash, "options": identity.options, "sampling": identity.sampling}

    def record_hit(self, hit: dict[str, Any], video_id: str, sha256: str, *, kind: str, started: float,
                   **ctx: Any) -> Answer:
        verdict = Verdict(**{k: hit.get(k) for k in VERDICT_KEYS if k != "raw"}, raw=hit.get("response") or "")
        verdict.reason = verdict.reason or ""
        verdict.status = verdict.status or "unparsed"
        if self.engine.takes_prompt and hit.get("response"):
            from engines.verdict import parse  # the model's text is what was cached: read it with today's parser

            verdict = parse(hit["response"])
        call = CallRecord(engine=self.engine.name, model=hit.get("model_reported"), revision=hit.get("revision"),
                          latency_s=hit.get("model_s"), decode_s=hit.get("decode_s"),
                          preprocess_s=hit.get("preprocess_s"), generate_s=hit.get("generate_s"),
                          prompt_tokens=hit.get("prompt_tokens"), completion_tokens=hit.get("completion_tokens"),
                          device=hit.get("device"),
                          extra={"lookup_s": round(time.perf_counter() - started, 6), "cached_from": hit["id"]})
        arts = Artifacts()
        summ = hit.get("artifacts") or {}
        for name, pts in (summ.get("tracks") or {}).items():
            arts.tracks[name] = [(float(t), float(s)) for t, s in pts]
        arts.thresholds = {k: float(v) for k, v in (summ.get("thresholds") or {}).items()}
        rid = _rl().log_response(self.store, kind=kind, engine=self.engine.name, verdict=verdict, call=call,
                              video_id=video_id, sha256=sha256, cached=True, cached_from=int(hit["id"]),
                              cache_key=self.identity.cache_key(sha256), question=hit.get("question"),
                              response=hit.get("response"), artifacts=hit.get("artifacts"),
                              **self._fields(self.identity), **ctx)
        return Answer(rid, video_id, verdict, call, arts, self.identity, sha256, True, False, hit.get("question"),
                      time.perf_counter() - started, turn=_rl().turn_of(self.store, rid) if ctx.get("chat_id") else None,
                      cached_from=int(hit["id"]))

    def record(self, c: Computed, *, kind: str, started: float, **ctx: Any) -> Answer:
        """Log a computed answer (identity checked against what the response reported) and cache it."""
        identity = self.identity
        reported = c.call.model
        extra = dict(c.call.extra or {})
        if reported and identity.model and reported != identity.model:
            extra["model_mismatch"] = {"resolved": identity.model, "reported": reported}
        if reported and reported != identity.model:
            identity = identity.with_model(reported)
        rev = c.call.revision
        if rev and rev != identity.revision:  # e.g. weights that reported their revision once loaded
            if identity.revision:
                extra["revision_mismatch"] = {"resolved": identity.revision, "reported": rev}
            identity = replace(identity, revision=rev)
        c.call.extra = extra
        key = identity.cache_key(c.sha256) if (self.cacheable and c.sha256) else None
        rid = _rl().log_response(self.store, kind=kind, engine=self.engine.name, verdict=c.verdict, call=c.call,
                              video_id=c.video_id, sha256=c.sha256, question=c.question,
                              artifacts=None if c.artifacts.empty else c.artifacts.summary(), error=c.error,
                              cache_key=key, **self._fields(identity), **ctx)
        if c.verdict.status != "error":
            _artifact_sinks(self.store, rid, c.artifacts, c.video_id)
            if key is not None:
                _rl().cache_put(self.store, key, rid)
                if identity is not self.identity:  # a rerun resolves the same way before its call
                    _rl().cache_put(self.store, self.identity.cache_key(c.sha256), rid)
        return Answer(rid, c.video_id, c.verdict, c.call, c.artifacts, identity, c.sha256, False, c.model_called,
                      c.question, time.perf_counter() - started,
                      turn=_rl().turn_of(self.store, rid) if ctx.get("chat_id") else None, error=c.error,
                      failed=c.failed)

    # -- all of it -------------------------------------------------------------------------------
    def predict(self, path: str | Path, video_id: str | None = None, *, kind: str = "eval", **ctx: Any) -> Answer:
        """Hash → cache → sample → call → check → log one video. ``ctx``: run_id, or chat_id (+ turn)."""
        started = time.perf_counter()
        video_id = video_id or video_id_of(path)
        sha = self.current_sha256(path)
        hit = self.lookup(sha)
        if hit is not None:
            return self.record_hit(hit, video_id, sha, kind=kind, started=started, **ctx)
        c = compute(self.engine, path, video_id, self.sampling, self.options, self.template, sha)
        return self.record(c, kind=kind, started=started, **ctx)
