"""Engine registry by decorator (the lmms-eval pattern).

Engines register themselves on import; importing this module imports every engine module, which
must stay cheap: heavy packages (torch, transformers, openai, boto3) are imported inside methods.
"""

from __future__ import annotations

import importlib
from typing import Any

from engines.base import Engine
from engines.errors import EngineError

_ENGINES: dict[str, type[Engine]] = {}

# Modules that define engines; imported lazily by all_engines().
ENGINE_MODULES = (
    "engines.baseline.engine",
    "engines.llm.transformers_engine",
    "engines.llm.openai_engine",
    "engines.llm.videollama2_engine",
)


def register(cls: type[Engine]) -> type[Engine]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _ENGINES[cls.name] = cls
    return cls


def _load_all() -> None:
    # Cheap imports only: each engine imports its heavy packages inside its methods, and reports a
    # missing package through availability(), so a broken optional install never stops start-up.
    for mod in ENGINE_MODULES:
        importlib.import_module(mod)


def all_engines() -> dict[str, type[Engine]]:
    _load_all()
    return dict(_ENGINES)


def get_engine(name: str, model: str | None = None, **config: Any) -> Engine:
    engines = all_engines()
    if name not in engines:
        known = ", ".join(sorted(engines)) or "none"
        raise EngineError(f"Unknown engine '{name}'; known engines: {known}.")
    return engines[name](model=model, **config)


def engine_status() -> list[dict[str, Any]]:
    """Every registered engine with whether it can run here and, if not, why."""
    out = []
    for name, cls in sorted(all_engines().items()):
        try:
            ok, reason = cls().availability()
        except Exception as e:  # availability must never take the app down
            ok, reason = False, f"Availability check failed: {e}"
        out.append({"name": name, "title": cls.title or name, "available": bool(ok), "reason": reason,
                    "remote": cls.remote})
    return out
