"""Start-up: open the store, index the library (rendering demo clips into an empty one), launch."""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger("ghostprobe")
DEFAULT_CONCURRENCY = 4  # events of one kind running at once (Gradio's default is 1)


def prepare(ctx, demo: bool = True, after=None):
    """The app's state: the store, the library indexed. ``after`` (a threading.Event): an empty library's demo
    clips are "preparing" at once but render only once it is set (``serve`` sets it when HTTP answers)."""
    from webapp.library import Library
    from webapp.state import AppState

    lib = Library(ctx.config, ctx.store)
    res = lib.scan()
    if demo:  # an empty library gets the demo clips in the background: the page answers first
        lib.start_demo_clips(after=after)
    for path, reason in res.failed.items():
        log.warning("not indexed: %s", reason)
    return AppState(config=ctx.config, store=ctx.store, library=lib)


def bind_address(config, host: str | None = None, port: int | None = None) -> tuple[str, int]:
    """127.0.0.1 by default; 0.0.0.0 on Hugging Face Spaces (SPACE_ID set); flags and env win."""
    host = host or os.environ.get("GHOSTPROBE_HOST") or ("0.0.0.0" if config.on_spaces else "127.0.0.1")
    port = port or int(os.environ.get("GHOSTPROBE_PORT", "7860"))
    return host, port


class LoginGate:
    """ASGI middleware: with a login (GHOSTPROBE_AUTH), nothing about the library reaches a visitor
    before login.

    Gradio 6 serves its login page from ``/`` with the whole API description inlined
    (``window.gradio_api_info``: endpoint names, parameter choices such as video ids, label sets and
    prompt versions), session or not. For a request without a valid session this middleware replaces
    that description, in every HTML page, with an empty one; ``/config``, ``/gradio_api/info`` and the
    call routes already answer 401 then. A logged-in session gets the page untouched.
    """

    EMPTY_API = b'window.gradio_api_info = {"named_endpoints":{},"unnamed_endpoints":{}};'

    def __init__(self, app):
        self.app = app

    @staticmethod
    def _authenticated(scope) -> bool:
        app = scope.get("app")
        if app is None or (getattr(app, "auth", None) is None and getattr(app, "auth_dependency", None) is None):
            return True
        if getattr(app, "auth_dependency", None) is not None:
            return False  # never rewrite for a custom dependency we cannot evaluate here: gate anyway
        from starlette.requests import HTTPConnection

        cookies = HTTPConnection(scope).cookies
        cid = getattr(app, "cookie_id", "")
        token = cookies.get(f"access-token-{cid}") or cookies.get(f"access-token-unsecure-{cid}")
        return bool(token) and getattr(app, "tokens", {}).get(token) is not None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD") or self._authenticated(scope):
            await self.app(scope, receive, send)
            return
        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message):
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                if not headers.get(b"content-type", b"").startswith(b"text/html"):
                    start["pass"] = True
                    await send(message)
                    return
                start["message"] = message
                return
            if start.get("pass"):
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                body = self._strip(b"".join(chunks))
                msg = start["message"]
                headers = [(k, v) for k, v in msg.get("headers") or [] if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**msg, "headers": headers})
                await send({"type": "http.response.body", "body": body if scope.get("method") != "HEAD" else b""})

        await self.app(scope, receive, capture)

    @classmethod
    def _strip(cls, body: bytes) -> bytes:
        import re

        return re.sub(rb"window\.gradio_api_info\s*=\s*.*?;\s*</script>", cls.EMPTY_API + b"</script>", body,
                      flags=re.S)


def serve(ctx, host: str | None = None, port: int | None = None, demo: bool = True) -> None:
    from engines.errors import redact_logs
    from webapp.app import build_app, launch_kwargs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact_logs()  # no credential (URL user-info, key, token) in any log line
    answering = threading.Event()  # set once HTTP answers: the demo clips render after, not during, start-up
    state = prepare(ctx, demo=demo, after=answering)
    # The queue's default concurrency through Gradio's own variable, read when the Blocks is made: calling
    # .queue() afterwards would rebuild the whole FastAPI app once more (~0.2 s of every start).
    os.environ.setdefault("GRADIO_DEFAULT_CONCURRENCY_LIMIT", str(DEFAULT_CONCURRENCY))
    app = build_app(state)
    from webapp.state import guard_user_errors

    guard_user_errors(app, log)  # a user error reaches the page/API client as gr.Error with its sentence
    host, port = bind_address(ctx.config, host, port)
    log.info("GhostProbe Studio on http://%s:%d (db %s)", host, port, ctx.config.db_path)
    sys.stdout.flush()
    kwargs = launch_kwargs(state)
    if kwargs.get("auth"):
        from starlette.middleware import Middleware

        app_kwargs = dict(kwargs.get("app_kwargs") or {})
        app_kwargs["middleware"] = [*app_kwargs.get("middleware", []), Middleware(LoginGate)]
        kwargs["app_kwargs"] = app_kwargs
    app.launch(server_name=host, server_port=port, show_error=False, prevent_thread_lock=True, **kwargs)
    answering.set()  # launch returns once the server answers
    app.block_thread()
