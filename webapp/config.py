"""Configuration from environment variables, resolved once per process (see README: Configuration)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from engines.errors import GhostProbeError


def _env(name: str, default: str | None = None) -> str | None:
    from engines.settings import env

    return env(name, default)


@dataclass
class Config:
    data_dir: Path
    db_path: Path
    library_roots: list[Path]
    uploads_dir: Path
    cache_dir: Path
    max_upload_mb: float
    auth: tuple[str, str] | None
    on_spaces: bool
    default_engine: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def all_roots(self) -> list[Path]:
        """Every folder the picker may serve from: the library roots plus the uploads folder."""
        return [*self.library_roots, self.uploads_dir]

    @property
    def demo_dir(self) -> Path:
        return self.library_roots[0] / "demo"


class ConfigError(GhostProbeError):
    """A setting (environment variable) with a value that cannot be used."""


def load_config(db: str | None = None) -> Config:
    data_dir = Path(_env("GHOSTPROBE_DATA_DIR", "data")).expanduser().resolve()
    db_path = Path(db or _env("GHOSTPROBE_DB", str(data_dir / "ghostprobe.duckdb"))).expanduser()
    roots_env = _env("GHOSTPROBE_LIBRARY")
    roots = [Path(p).expanduser().resolve() for p in roots_env.split(os.pathsep) if p] if roots_env else [
        data_dir / "library"]
    uploads = Path(_env("GHOSTPROBE_UPLOADS", str(data_dir / "uploads"))).expanduser().resolve()
    cache = Path(_env("GHOSTPROBE_CACHE", str(data_dir / "cache"))).expanduser().resolve()
    try:
        max_mb = float(_env("GHOSTPROBE_MAX_UPLOAD_MB", "500"))
    except ValueError:
        raise ConfigError("GHOSTPROBE_MAX_UPLOAD_MB must be a number of megabytes, such as 500.") from None
    auth = None
    auth_env = _env("GHOSTPROBE_AUTH")
    if auth_env:
        user, sep, pw = auth_env.partition(":")
        if not sep or not user or not pw:
            raise ConfigError("GHOSTPROBE_AUTH must look like user:password.")
        auth = (user, pw)
    return Config(
        data_dir=data_dir,
        db_path=db_path,
        library_roots=roots,
        uploads_dir=uploads,
        cache_dir=cache,
        max_upload_mb=max_mb,
        auth=auth,
        on_spaces=bool(_env("SPACE_ID")),
        default_engine=_env("GHOSTPROBE_ENGINE", "baseline"),
    )
