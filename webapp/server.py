"""Start-up: open the store, index the library (rendering demo clips into an empty one), launch."""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("ghostprobe")


def prepare(ctx, demo: bool = True):
    from webapp.library import Library
    from webapp.state import AppState

    lib = Library(ctx.config, ctx.store)
    res = lib.scan()
    if demo:  # an empty library gets the demo clips in the background: the page answers first
        lib.start_demo_clips()
    for path, reason in res.failed.items():
        log.warning("not indexed: %s", reason)
    return AppState(config=ctx.config, store=ctx.store, library=lib)


def bind_address(config, host: str | None = None, port: int | None = None) -> tuple[str, int]:
    """127.0.0.1 by default; 0.0.0.0 on Hugging Face Spaces (SPACE_ID set); flags and env win."""
    host = host or os.environ.get("GHOSTPROBE_HOST") or ("0.0.0.0" if config.on_spaces else "127.0.0.1")
    port = port or int(os.environ.get("GHOSTPROBE_PORT", "7860"))
    return host, port


def serve(ctx, host: str | None = None, port: int | None = None, demo: bool = True) -> None:
    from webapp.app import build_app, launch_kwargs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state = prepare(ctx, demo=demo)
    app = build_app(state)
    host, port = bind_address(ctx.config, host, port)
    log.info("GhostProbe Studio on http://%s:%d (db %s)", host, port, ctx.config.db_path)
    sys.stdout.flush()
    app.queue(default_concurrency_limit=4).launch(server_name=host, server_port=port, show_error=False,
                                                   **launch_kwargs(state))
