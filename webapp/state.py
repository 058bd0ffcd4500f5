"""What every tab shares: configuration, the store, the library."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reports.store import Store
from webapp.config import Config
from webapp.library import Library


@dataclass
class AppState:
    config: Config
    store: Store
    library: Library


def user_message(e: BaseException) -> str:
    """The one sentence a person sees for an error they can fix."""
    return str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__


def is_user_error(e: BaseException) -> bool:
    from webapp.cli import user_errors

    return isinstance(e, user_errors())


def status_md(msg: str, ok: bool = True) -> str:
    return ("✅ " if ok else "⚠️ ") + msg


def fmt_num(v: Any, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"
