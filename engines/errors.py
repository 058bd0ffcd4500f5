"""Errors a person can cause, and the one way they are shown.

Every user error — a bad file, flag, video, label set, prompt, run, database or configuration, an
engine that cannot run — derives from :class:`GhostProbeError`. :func:`format_error` turns one into
the text a person sees: the whole message on one line, credentials removed
(:func:`engines.redact.redact`), ending with a full stop, never a traceback. The CLI prints it and
exits 2, the dashboard raises ``gr.Error`` with it (or shows it in a status line), the logs write it.

:func:`is_user_error` says whether an exception is one of those (a GhostProbeError, an argparse
error, or an OS error about a named path); anything else is a bug, logged with its traceback.

:func:`input_file` and :func:`output_path` check a path a person named *before* it is opened, so a
FIFO never blocks a read, a symlink loop says so, and an existing file is not overwritten silently.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from pathlib import Path


class GhostProbeError(Exception):
    """Base for every error caused by input, configuration or an unavailable service.

    ``str(err)`` is meant for a person; show it with :func:`format_error`, never as a traceback.
    """


class VideoError(GhostProbeError):
    """A path that is missing, not a video, corrupt, truncated, empty, or a folder with no images."""


class EngineError(GhostProbeError):
    """An engine that cannot run: not configured, package missing, endpoint down, bad credentials."""


class PromptError(GhostProbeError):
    """A prompt template that cannot be loaded or rendered."""


class InputError(GhostProbeError):
    """A file or folder named by a person that cannot be used as asked: missing, a folder where a file
    belongs, a FIFO or device, a symlink loop, unreadable, or an output that exists or cannot be written."""


# -- formatting ----------------------------------------------------------------------------------
_END = (".", "!", "?", "。", "！", "？", "…")


def sentence(text: str) -> str:
    """``text`` on one line (runs of whitespace and newlines become one space), ending with a full stop."""
    s = re.sub(r"\s+", " ", str(text)).strip()
    if not s or s.endswith(_END):
        return s
    return s + ("。" if re.search(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]$", s) else ".")


def _os_message(e: OSError) -> str:
    name = e.filename if e.filename is not None else ""
    target = f" {e.filename2}" if getattr(e, "filename2", None) else ""
    if e.errno == errno.ELOOP:
        return f"{name} is a symlink loop (the link leads back to itself), so it cannot be opened"
    why = {errno.ENOENT: "does not exist", errno.EACCES: "is not accessible (permission denied)",
           errno.EPERM: "is not accessible (operation not permitted)", errno.EISDIR: "is a folder, not a file",
           errno.ENOTDIR: "has a part that is a file, not a folder", errno.EEXIST: "already exists",
           errno.EROFS: "is on a read-only file system", errno.ENOSPC: "cannot be written: the disk is full",
           errno.ENAMETOOLONG: "is too long a name"}.get(e.errno or -1)
    if why is None:
        why = f"cannot be used ({(e.strerror or e.__class__.__name__).lower()})"
    return f"{name}{target} {why}".strip()


def format_error(e: BaseException) -> str:
    """The text a person sees for ``e``: the whole message on one line, redacted, ending with a full stop."""
    from engines.redact import redact

    if isinstance(e, OSError) and not isinstance(e, GhostProbeError) and e.filename is not None:
        text = _os_message(e)
    elif isinstance(e, RecursionError):
        text = "The input is nested too deeply to read"
    elif _is_nul_path_error(e):
        text = "A path contains a NUL byte, which no file name can hold"
    else:
        text = str(e).strip()
        if not text or text == "None":
            text = e.__class__.__name__
        if text.startswith(("'", '"')) and isinstance(e, KeyError):
            text = f"Unknown {text}"
    # a NUL byte or other control character never reaches a terminal, a log line or the UI
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "�", text)
    return sentence(redact(text))


def is_user_error(e: BaseException) -> bool:
    """A GhostProbeError, an argparse error, or an OS error about a path a person named (not a bug)."""
    import argparse

    if isinstance(e, (GhostProbeError, argparse.ArgumentError, argparse.ArgumentTypeError)):
        return True
    if _is_nul_path_error(e):
        return True
    return isinstance(e, OSError) and e.filename is not None


def _is_nul_path_error(e: BaseException) -> bool:
    """``os.stat("a\\x00b")`` and friends raise ``ValueError: embedded null byte``: a bad name, not a bug."""
    return type(e) is ValueError and "null byte" in str(e) and "embedded" in str(e)


# -- paths a person names --------------------------------------------------------------------------
def _has_nul(path: str | os.PathLike) -> bool:
    return "\x00" in os.fspath(path) if isinstance(os.fspath(path), str) else b"\x00" in os.fspath(path)


def input_file(path: str | os.PathLike, what: str = "file", allow_dir: bool = False) -> Path:
    """``path`` checked to be an existing regular file (or a folder when ``allow_dir``) that can be read.

    Refuses, with one sentence, a NUL byte in the name, a missing path, a dangling symlink, a symlink
    loop, a folder, and anything that is not a regular file (a FIFO would block the read forever, a
    device never ends).
    """
    if _has_nul(path):
        raise InputError(f"The path of the {what} contains a NUL byte, which no file name can hold.")
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InputError(f"{p} is a symlink loop (the link leads back to itself), so it cannot be read.") from None
        if e.errno == errno.ENOENT:
            if os.path.islink(p):
                raise InputError(f"{p} is a symbolic link to {os.readlink(p)}, which does not exist.") from None
            raise InputError(f"The {what} {p} does not exist.") from None
        if e.errno == errno.ENAMETOOLONG:
            raise InputError(f"The path of the {what} is too long.") from None
        raise InputError(sentence(_os_message(e))) from None
    if stat.S_ISDIR(st.st_mode):
        if allow_dir:
            return p
        raise InputError(f"{p} is a folder, not a {what}.")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else (
            "a socket" if stat.S_ISSOCK(st.st_mode) else "a device")
        raise InputError(f"{p} is {kind}, not a regular file; give a {what} saved on disk.")
    if not os.access(p, os.R_OK):
        raise InputError(f"The {what} {p} is not readable (permission denied).")
    return p


def output_path(path: str | os.PathLike, what: str = "file", force: bool = False, folder: bool = False) -> Path:
    """``path`` checked to be writable as an output ``what`` (a file, or a folder when ``folder``).

    An existing file is refused unless ``force``; a path under a file, or under a folder that cannot be
    written, is refused before anything is created.
    """
    if _has_nul(path):
        raise InputError(f"The path of the {what} contains a NUL byte, which no file name can hold.")
    p = Path(path)
    if os.path.lexists(p):
        try:
            st = os.stat(p)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise InputError(f"{p} is a symlink loop (the link leads back to itself).") from None
            st = None
        if folder:
            if st is None or not stat.S_ISDIR(st.st_mode):
                raise InputError(f"{p} exists and is not a folder; the {what} must be a folder.")
        else:
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise InputError(f"{p} is a folder; the {what} must be a file name.")
            if not force:
                raise InputError(f"{p} already exists; pass --force to overwrite it.")
            if st is not None and not stat.S_ISREG(st.st_mode):
                raise InputError(f"{p} is not a regular file, so it cannot be overwritten.")
    # the nearest existing ancestor decides whether the path can be created
    anc = p.parent if not folder or not p.exists() else p
    while not os.path.lexists(anc) and anc != anc.parent:
        anc = anc.parent
    try:
        ast = os.stat(anc)
    except OSError as e:
        raise InputError(sentence(_os_message(e))) from None
    if not stat.S_ISDIR(ast.st_mode):
        raise InputError(f"Cannot create {p}: {anc} is a file, not a folder.")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise InputError(f"Cannot create {p}: the folder {anc} is not writable.")
    return p


# -- logs ------------------------------------------------------------------------------------------
class RedactingFormatter(logging.Formatter):
    """A log formatter whose output (message and any traceback) has credentials removed by
    :func:`engines.redact.redact`: install it on every handler that writes to a terminal or a file."""

    def format(self, record: logging.LogRecord) -> str:
        from engines.redact import redact

        return redact(super().format(record))


def redact_logs(level: int | None = None, fmt: str | None = None) -> None:
    """Make every log line of this process pass through :class:`RedactingFormatter`: the root logger's
    handlers (a stderr handler is added when it has none and ``level`` is given) and Python's
    last-resort handler (what prints warnings when nothing is configured)."""
    root = logging.getLogger()
    if level is not None and not root.handlers:
        logging.basicConfig(level=level, format=fmt or "%(asctime)s %(levelname)s %(name)s: %(message)s")
    for h in [*root.handlers, logging.lastResort]:
        if h is None or isinstance(h.formatter, RedactingFormatter):
            continue
        base = h.formatter or logging.Formatter(fmt or "%(message)s" if h is logging.lastResort else None)
        rf = RedactingFormatter(base._fmt, base.datefmt)
        h.setFormatter(rf)
