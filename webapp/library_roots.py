"""Library roots an admin adds from the UI, when the deployment allows it.

Off unless ``GHOSTPROBE_ALLOW_ADD_ROOT`` is set:

- ``GHOSTPROBE_ALLOW_ADD_ROOT=1``: any existing folder on the server (never ``/`` itself);
- ``GHOSTPROBE_ALLOW_ADD_ROOT=/mnt/videos:/data``: only folders inside one of these (os.pathsep-separated).

The same confinement as every other library path: the folder is resolved with ``os.path.realpath``
(symlinks followed) *before* it is checked, so a link cannot smuggle in a folder outside the allowed
ones; once added, files are served only when their own real path lies inside a root. Added roots are
kept in ``<data dir>/library_roots.json`` and come back at the next start.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from engines.errors import GhostProbeError

ENV = "GHOSTPROBE_ALLOW_ADD_ROOT"
FILE_NAME = "library_roots.json"


class RootError(GhostProbeError):
    """A folder that cannot be added as a library root (one sentence)."""


def allowed_parents() -> list[Path] | None:
    """None when adding roots is off; [] when any folder is allowed; else the folders new roots must lie in."""
    v = (os.environ.get(ENV) or "").strip()
    if not v or v.lower() in ("0", "false", "no", "off"):
        return None
    if v.lower() in ("1", "true", "yes", "on"):
        return []
    return [Path(os.path.realpath(p)) for p in v.split(os.pathsep) if p.strip()]


def enabled() -> bool:
    return allowed_parents() is not None


def _inside(p: Path, root: Path) -> bool:
    try:
        p.relative_to(root)
        return True
    except ValueError:
        return False


def check(folder: str) -> Path:
    """The real path of ``folder`` if it may become a root; RootError with the reason otherwise."""
    parents = allowed_parents()
    if parents is None:
        raise RootError(f"Adding library folders from the UI is off; set {ENV}=1 (or to the allowed parent folders) "
                        "on the server to allow it.")
    raw = (folder or "").strip()
    if not raw:
        raise RootError("Give the folder's absolute path on the server.")
    if "\x00" in raw:
        raise RootError("A folder path cannot contain a NUL byte.")
    if not os.path.isabs(raw):
        raise RootError(f"{raw} is not an absolute path; give the folder's full path on the server.")
    real = Path(os.path.realpath(raw))
    if real == Path(real.anchor):
        raise RootError("The file system root cannot be a library folder.")
    if parents and not any(_inside(real, p) for p in parents):
        raise RootError(f"{raw} is outside the folders this server allows ({', '.join(str(p) for p in parents)}).")
    if not real.exists():
        raise RootError(f"{raw} does not exist on the server.")
    if not real.is_dir():
        raise RootError(f"{raw} is a file, not a folder.")
    if not os.access(real, os.R_OK | os.X_OK):
        raise RootError(f"{raw} cannot be read by the server.")
    return real


def _file(data_dir: Path) -> Path:
    return Path(data_dir) / FILE_NAME


def saved(data_dir: Path) -> list[Path]:
    try:
        items = json.loads(_file(data_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [Path(p) for p in items if isinstance(p, str)]


def add(config, folder: str) -> tuple[Path, bool]:
    """Add ``folder`` to ``config.library_roots`` (and the saved list). Returns (real path, newly added)."""
    real = check(folder)
    roots = [Path(os.path.realpath(r)) for r in config.library_roots]
    if any(real == r for r in roots):
        return real, False
    config.library_roots.append(real)
    have = [str(p) for p in saved(config.data_dir)]
    if str(real) not in have:
        f = _file(config.data_dir)
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp")
        tmp.write_text(json.dumps(have + [str(real)], ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, f)
    return real, True


def restore(config) -> list[Path]:
    """At start: put the saved roots back that are still allowed and present (others are skipped)."""
    if not enabled():
        return []
    out = []
    for p in saved(config.data_dir):
        try:
            real = check(str(p))
        except RootError:
            continue
        if all(Path(os.path.realpath(r)) != real for r in config.library_roots):
            config.library_roots.append(real)
            out.append(real)
    return out


def allow_serving(path: Path) -> None:
    """Let the running Gradio app serve files from a root added after launch (launch() took the list once)."""
    try:
        from gradio.context import LocalContext

        blocks = LocalContext.blocks.get(None)
    except Exception:
        blocks = None
    if blocks is not None and str(path) not in blocks.allowed_paths:
        blocks.allowed_paths.append(str(path))
