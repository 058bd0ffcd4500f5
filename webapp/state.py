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


def guard_user_errors(blocks, log=None) -> int:
    """Wrap every event handler and API function of ``blocks`` so that a user error that escapes it
    reaches the browser or the API client as ``gr.Error`` with :func:`engines.errors.format_error`'s
    sentence — not Gradio's opaque "upstream app raised an exception" — and leaves no traceback in the
    log. ``gr.Error`` raised by a handler and real bugs pass through unchanged (Gradio logs those).
    Generators and async handlers stay what they were. Returns how many functions were wrapped."""
    import functools
    import inspect

    import gradio as gr

    from engines.errors import format_error

    def convert(e: BaseException) -> BaseException | None:
        if isinstance(e, gr.Error) or not is_user_error(e):
            return None
        if log is not None:
            log.info("user error: %s", format_error(e))
        return gr.Error(format_error(e), print_exception=False)

    def guard(fn):
        if inspect.isasyncgenfunction(fn):
            @functools.wraps(fn)
            async def wrapper(*args, **kwargs):
                try:
                    async for item in fn(*args, **kwargs):
                        yield item
                except Exception as e:  # noqa: BLE001 - converted or re-raised unchanged
                    err = convert(e)
                    if err is None:
                        raise
                    raise err from None
        elif inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                try:
                    return (yield from fn(*args, **kwargs))
                except Exception as e:  # noqa: BLE001
                    err = convert(e)
                    if err is None:
                        raise
                    raise err from None
        elif inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def wrapper(*args, **kwargs):
                try:
                    return await fn(*args, **kwargs)
                except Exception as e:  # noqa: BLE001
                    err = convert(e)
                    if err is None:
                        raise
                    raise err from None
        else:
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                try:
                    return fn(*args, **kwargs)
                except Exception as e:  # noqa: BLE001
                    err = convert(e)
                    if err is None:
                        raise
                    raise err from None
        wrapper._gp_guarded = True  # type: ignore[attr-defined]
        return wrapper

    n = 0
    for block_fn in list(getattr(blocks, "fns", {}).values()):
        fn = getattr(block_fn, "fn", None)
        if fn is None or getattr(fn, "_gp_guarded", False):
            continue
        block_fn.fn = guard(fn)
        n += 1
    return n
