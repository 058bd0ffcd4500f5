"""The ``ghostprobe`` command line.

Each area lives in its own module under ``webapp/commands/`` exposing ``register(subparsers)``;
handlers receive ``(args, ctx)`` and return an exit code. A user error (any
:class:`engines.errors.GhostProbeError` — StoreError, LabelError, ConfigError, RunError, VideoError,
EngineError… all derive from it — or an OS error about a named path) prints
:func:`engines.errors.format_error`'s one sentence on stderr and exits 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from engines.errors import GhostProbeError

COMMAND_MODULES = (
    "webapp.commands.core",
    "webapp.commands.prompts",
    "webapp.commands.llm",
    "webapp.commands.evaluation",
    "webapp.commands.logs",
    "webapp.commands.cloud",
    "webapp.commands.runs_admin",
    "webapp.commands.models",
    "webapp.commands.vad",
)


class Context:
    """What every handler needs: configuration, and the store opened on first use."""

    def __init__(self, db: str | None):
        from webapp.config import load_config

        self.config = load_config(db)
        self._store = None

    @property
    def store(self):
        if self._store is None:
            from reports.store import Store

            self._store = Store(self.config.db_path)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


class CliError(GhostProbeError):
    """A usage error found by a handler (bad combination of flags, unknown id)."""


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types that are a person's mistake, not a bug (OS errors count only when they name a
    path: see :func:`engines.errors.is_user_error`)."""
    return (GhostProbeError, argparse.ArgumentError, argparse.ArgumentTypeError, OSError)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one sentence, exit 2 (argparse's own convention too)
        self.exit(2, f"ghostprobe: {message[0].upper() + message[1:]}.\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ghostprobe", description="GhostProbe Studio: ghost probing (鬼探头) detection in dashcam video.")
    p.add_argument("--db", help="DuckDB file (default: $GHOSTPROBE_DB or ./data/ghostprobe.duckdb)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from engines.errors import format_error, is_user_error, redact_logs

    redact_logs()  # warnings printed without a configured handler lose credentials too
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = None
    try:
        ctx = Context(args.db)
        return int(args.func(args, ctx) or 0)
    except BrokenPipeError:  # `ghostprobe … | head`: the reader left; nothing to say
        sys.stderr.close()
        return 141
    except user_errors() as e:
        if not is_user_error(e):
            raise
        print(f"ghostprobe: {format_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ghostprobe: interrupted.", file=sys.stderr)
        return 130
    except Exception as e:  # a damaged database met outside Store's own query helpers: still one sentence
        failure = _store_failure(e, ctx)
        if failure is None:
            raise
        print(f"ghostprobe: {format_error(failure)}", file=sys.stderr)
        return 2
    finally:
        if ctx is not None:
            try:
                ctx.close()
            except Exception:  # noqa: BLE001 - closing a damaged database must not hide the sentence above
                pass


def _store_failure(e: BaseException, ctx: Context | None):
    """A StoreError for a DuckDB error that says the database file itself is unusable, else None."""
    if "duckdb" not in sys.modules or ctx is None or ctx._store is None:
        return None
    from reports.store import _storage_failure

    return _storage_failure(ctx._store.path, e)


if __name__ == "__main__":
    sys.exit(main())
