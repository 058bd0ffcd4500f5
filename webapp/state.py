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
    """What a person sees for an error they can fix: :func:`engines.errors.format_error` (the whole
    message on one line, credentials removed, ending with a full stop)."""
    from engines.errors import format_error

    return format_error(e)


def is_user_error(e: BaseException) -> bool:
    """A GhostProbeError or an OS error about a named path (see :func:`engines.errors.is_user_error`)."""
    from engines.errors import is_user_error as _is

    return _is(e)


def raise_user_error(e: BaseException, log=None, what: str = "request") -> None:
    """For API endpoints: re-raise a user error as ``gr.Error`` with its sentence (Gradio then shows it
    instead of "upstream app raised an exception", and nothing is logged with a traceback); log a bug
    with its traceback and raise a ``gr.Error`` that names no internals."""
    import gradio as gr

    from engines.errors import format_error

    if is_user_error(e):
        raise gr.Error(format_error(e), print_exception=False) from None
    if log is not None:
        log.error("%s failed", what, exc_info=e)
    raise gr.Error(f"Internal error in {what} ({e.__class__.__name__}); see the server log.",
                   print_exception=False) from None


def status_md(msg: str, ok: bool = True) -> str:
    return ("✅ " if ok else "⚠️ ") + msg


def fmt_num(v: Any, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"
