"""Engines are found through the ``ghostprobe.engines`` entry-point group, as llm's plugins are.

A separate package adds an engine with one line in its own ``pyproject.toml``::

    [project.entry-points."ghostprobe.engines"]
    my_engine = "my_package.module:MyEngine"

The built-in engines are listed the same way in this project's ``pyproject.toml``. When the project
itself is not installed as a distribution (a Hugging Face Space runs it from the checkout), the same
built-in list is read from :data:`BUILTIN` so the Space sees the same engines.

Loading an entry point imports one module, which must stay cheap: heavy packages (torch,
transformers, openai, boto3, anomalib) are imported inside the engine's methods, and a missing
package is reported by ``availability()``. An entry point that fails to import is listed as
unavailable with the reason, never a crash. :func:`register` adds a class at run time (tests).
"""

from __future__ import annotations

import importlib
import logging
import threading
from importlib import metadata
from typing import Any

from engines.base import BATCH, CHAT, DETECTOR, Engine
from engines.errors import EngineError

log = logging.getLogger(__name__)
GROUP = "ghostprobe.engines"

# The built-in engines, as pyproject.toml lists them (used when the distribution is not installed).
BUILTIN: dict[str, str] = {
    "baseline": "engines.baseline.engine:BaselineEngine",
    "transformers": "engines.llm.transformers_engine:TransformersEngine",
    "openai": "engines.llm.openai_engine:OpenAIEngine",
    "videollama2": "engines.llm.videollama2_engine:VideoLLaMA2Engine",
    "motion": "engines.vad.motion:MotionMapEngine",
    "aivad": "engines.vad.aivad:AiVadEngine",
    "sagemaker": "engines.vad.sagemaker:SageMakerVadEngine",
    "azureml-job": "engines.cloud.azureml:AzureMLJobEngine",
    "azureml": "engines.cloud.endpoint_engine:AzureMLEndpointEngine",
    "sagemaker-vlm": "engines.cloud.endpoint_engine:SageMakerEndpointEngine",
}

_ENGINES: dict[str, type[Engine]] = {}
_BROKEN: dict[str, str] = {}  # name -> why its entry point could not be loaded
_LOADED = False
_LOCK = threading.Lock()


def register(cls: type[Engine]) -> type[Engine]:
    """Add an engine class at run time (usable as a decorator)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _ENGINES[cls.name] = cls
    _BROKEN.pop(cls.name, None)
    return cls


def entry_points() -> dict[str, str]:
    """name -> "module:Class" for every engine entry point (built-ins when the project is not installed)."""
    found = {ep.name: ep.value for ep in metadata.entry_points(group=GROUP)}
    try:
        metadata.distribution("ghostprobe-studio")
    except metadata.PackageNotFoundError:
        found = {**BUILTIN, **found}
    return found


def _load(target: str) -> type[Engine]:
    mod, _, attr = target.partition(":")
    obj: Any = importlib.import_module(mod)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Engine)):
        raise TypeError(f"{target} is not an Engine subclass")
    return obj


def _load_all() -> None:
    global _LOADED
    with _LOCK:
        if _LOADED:
            return
        for name, target in sorted(entry_points().items()):
            if name in _ENGINES:
                continue
            try:
                cls = _load(target)
            except Exception as e:  # a broken plugin must not stop start-up
                log.warning("engine entry point %s = %s failed to load: %s", name, target, e)
                _BROKEN[name] = f"The engine plugin {name} ({target}) failed to load: {type(e).__name__}: {e}."
                continue
            _ENGINES[cls.name or name] = cls
        _LOADED = True


def all_engines() -> dict[str, type[Engine]]:
    _load_all()
    return dict(_ENGINES)


def is_local(kinds: Any) -> bool:
    """Whether an engine with these kinds is *called* (chat model or detector) rather than *submitted*: a
    batch-only engine (``azureml-job``) runs a whole evaluation as a cloud job, so it belongs in the Jobs
    tab and ``jobs submit-eval``, never in the Chat tab's or the Prompt Lab's engine pickers. An engine
    whose kinds are unknown (a plugin that failed to load) stays listed, with its reason."""
    ks = set(kinds or ())
    return not (BATCH in ks and not ks & {CHAT, DETECTOR})


def local_engines() -> dict[str, type[Engine]]:
    """:func:`all_engines` without the batch-only engines (see :func:`is_local`): what a picker offers."""
    return {n: c for n, c in all_engines().items() if is_local(getattr(c, "kinds", ()))}


def get_engine(name: str, model: str | None = None, **config: Any) -> Engine:
    engines = all_engines()
    if name not in engines:
        if name in _BROKEN:
            raise EngineError(_BROKEN[name])
        known = ", ".join(sorted(engines)) or "none"
        raise EngineError(f"Unknown engine '{name}'; known engines: {known}.")
    return engines[name](model=model, **config)


def engine_status(local_only: bool = False) -> list[dict[str, Any]]:
    """Every engine with whether it can run here and, if not, why (broken plugins included).

    ``local_only``: only the engines a picker offers (:func:`is_local`; batch engines are left out)."""
    from engines.redact import redact

    out = []
    for name, cls in sorted(all_engines().items()):
        if local_only and not is_local(getattr(cls, "kinds", ())):
            continue
        try:
            inst = cls()
            ok, reason = inst.availability()
            kinds = sorted(inst.kinds)
        except Exception as e:  # availability must never take the app down
            ok, reason, kinds = False, f"Availability check failed: {e}", sorted(getattr(cls, "kinds", ()))
        out.append({"name": name, "title": cls.title or name, "available": bool(ok), "reason": redact(reason),
                    "remote": cls.remote, "kinds": kinds})
    for name, why in sorted(_BROKEN.items()):
        if name not in _ENGINES:
            out.append({"name": name, "title": name, "available": False, "reason": why, "remote": False,
                        "kinds": []})
    return out
