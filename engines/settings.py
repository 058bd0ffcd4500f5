"""One settings object: every environment variable GhostProbe reads, read in one place.

:class:`Settings` is built from an environment mapping (``Settings.from_env(os.environ)``) and passed
down: ``webapp.config.load_config`` turns it into the app's Config, engines read their own keys
through :meth:`Settings.get`. :func:`current` is the process's settings, read once and read again
only when the environment changes (a test's ``monkeypatch.setenv``, a user's ``export``), so no
module keeps its own stale copy and no module reads ``os.environ`` itself. :func:`env` is the one
helper for engine-specific keys (empty values count as unset).

The variables are listed in the README's Configuration section; :data:`KNOWN` names each with what
it does, so ``ghostprobe db info`` and the README can show them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

KNOWN: dict[str, str] = {
    "GHOSTPROBE_DATA_DIR": "where the database, library, uploads, caches and models live (default ./data)",
    "GHOSTPROBE_DB": "the DuckDB file (default <data dir>/ghostprobe.duckdb)",
    "GHOSTPROBE_LIBRARY": "library roots, separated by the path separator (default <data dir>/library)",
    "GHOSTPROBE_UPLOADS": "where uploads are stored (default <data dir>/uploads)",
    "GHOSTPROBE_CACHE": "browser-playable copies and thumbnails (default <data dir>/cache)",
    "GHOSTPROBE_PROMPTS": "user prompt folders (default <data dir>/prompts)",
    "GHOSTPROBE_MAX_UPLOAD_MB": "upload size limit in MB (default 500)",
    "GHOSTPROBE_AUTH": "user:password to require a login",
    "GHOSTPROBE_ENGINE": "the default engine (default baseline)",
    "GHOSTPROBE_LOCATION": "where runs execute, a price-catalogue key (default: what the engine says)",
    "GHOSTPROBE_OPENAI_BASE_URL": "OpenAI-compatible server (vLLM, SGLang …)",
    "GHOSTPROBE_OPENAI_API_KEY": "its key (else OPENAI_API_KEY)",
    "GHOSTPROBE_OPENAI_MODEL": "its model (default: what /v1/models lists first)",
    "GHOSTPROBE_HF_MODEL": "the transformers engine's model (hub id in the cache or a folder)",
    "GHOSTPROBE_VIDEOLLAMA2_URL": "the VideoLLaMA2 GPU worker",
    "SPACE_ID": "set by Hugging Face Spaces",
}


def _clean(v: str | None) -> str | None:
    return v if v not in (None, "") else None


@dataclass(frozen=True)
class Settings:
    """What the environment says, parsed once. Unset and empty values are None."""

    values: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        return cls({k: v for k, v in environ.items() if v != ""})

    def get(self, name: str, default: str | None = None) -> str | None:
        v = _clean(self.values.get(name))
        return v if v is not None else default

    def flag(self, name: str) -> bool:
        return (self.get(name) or "").strip().lower() in ("1", "true", "yes", "on")

    # -- the paths every layer shares ------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return Path(self.get("GHOSTPROBE_DATA_DIR", "data")).expanduser().resolve()

    @property
    def prompt_dirs(self) -> list[Path]:
        """The user's prompt folders: $GHOSTPROBE_PROMPTS, else <data dir>/prompts."""
        env = self.get("GHOSTPROBE_PROMPTS")
        if env:
            return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
        return [self.data_dir / "prompts"]

    @property
    def on_spaces(self) -> bool:
        return bool(self.get("SPACE_ID"))


_LOCK = threading.Lock()
_CURRENT: tuple[frozenset, Settings] | None = None


def current() -> Settings:
    """This process's settings: read from the environment once, and again only after it changed."""
    global _CURRENT
    snapshot = frozenset((k, v) for k, v in os.environ.items() if v != "")
    with _LOCK:
        if _CURRENT is None or _CURRENT[0] != snapshot:
            _CURRENT = (snapshot, Settings.from_env(dict(snapshot)))
        return _CURRENT[1]


def env(name: str, default: str | None = None) -> str | None:
    """One environment key through :func:`current` (empty counts as unset)."""
    return current().get(name, default)
