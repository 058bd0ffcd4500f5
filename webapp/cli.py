"""The ``ghostprobe`` command line.

Each area lives in its own module under ``webapp/commands/`` exposing ``register(subparsers)``;
handlers receive ``(args, ctx)`` and return an exit code. A user error (any GhostProbeError,
StoreError, LabelError, ConfigError) prints one sentence on stderr and exits 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

COMMAND_MODULES = (
    "webapp.commands.core",
    "webapp.commands.prompts",
    "webapp.commands.llm",
    "webapp.commands.evaluation",
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


class CliError(Exception):
    """A usage error found by a handler (bad combination of flags, unknown id)."""


def user_errors() -> tuple[type[BaseException], ...]:
    from engines.errors import GhostProbeError
    from reports.labels import LabelError
    from reports.store import StoreError
    from webapp.config import ConfigError

    return (GhostProbeError, StoreError, LabelError, ConfigError, CliError)


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
    parser = build_parser()
    args = parser.parse_args(argv)
    errors = user_errors()
    ctx = None
    try:
        ctx = Context(args.db)
        return int(args.func(args, ctx) or 0)
    except errors as e:
        print(f"ghostprobe: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ghostprobe: interrupted.", file=sys.stderr)
        return 130
    finally:
        if ctx is not None:
            ctx.close()


if __name__ == "__main__":
    sys.exit(main())
