"""SageMaker bring-your-own-container form of the endpoint contract (engines/cloud/contract.py).

``python -m engines.cloud.byoc_server --port 8080`` (the container's ``serve``) answers:

- ``GET /ping``: 200 once the engine is loaded, 503 while loading, 500 with the reason if it failed
  (SageMaker sends traffic only after 200);
- ``POST /invocations`` (also ``/endpoints/<name>/invocations``, the runtime API's own path, so a boto3
  ``sagemaker-runtime`` client with ``endpoint_url`` reaches the container on loopback): the contract's
  JSON request → its JSON response; 400/500 with ``{"error": one sentence}``.

The same layout as the AI-VAD container (engines/vad/serve/server.py). Engine and model from
``--engine``/``--model`` or ``GHOSTPROBE_SCORE_ENGINE``/``GHOSTPROBE_HF_MODEL`` (default: ``/opt/ml/model``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)
MAX_BODY = 6 * 1024 * 1024  # SageMaker's real-time payload limit


class State:
    def __init__(self, engine_name: str, model: str | None):
        self.engine_name, self.model = engine_name, model
        self.engine = None
        self.error: str | None = None
        self.ready = threading.Event()

    def load(self) -> None:
        from engines.registry import get_engine

        try:
            eng = get_engine(self.engine_name, model=self.model)
            ok, why = eng.availability()
            if not ok:
                raise RuntimeError(why)
            self.engine = eng
        except Exception as e:  # noqa: BLE001 - /ping reports it
            self.error = str(e).splitlines()[0] if str(e) else type(e).__name__
        finally:
            self.ready.set()


def make_handler(st: State):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def _send(self, status: int, obj: dict[str, Any]) -> None:
            if status >= 400 and "error" in obj:
                obj = {**obj, "message": obj["error"]}  # what botocore reads from an error body
            data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.split("?")[0] != "/ping":
                return self._send(404, {"error": "Unknown path: use GET /ping or POST /invocations."})
            if not st.ready.is_set():
                return self._send(503, {"status": "loading"})
            if st.error:
                return self._send(500, {"status": "failed", "error": st.error})
            return self._send(200, {"status": "ok", "engine": st.engine_name, "model": st.engine.model_id()})

        def do_POST(self):
            from engines.cloud.contract import ContractError, answer
            from engines.errors import GhostProbeError
            from engines.redact import redact

            path = self.path.split("?")[0]
            if path != "/invocations" and not re.match(r"^/endpoints/[^/]+/invocations$", path):
                return self._send(404, {"error": "Unknown path: use POST /invocations."})
            n = int(self.headers.get("Content-Length") or 0)
            if n > MAX_BODY:
                self.rfile.read(n)
                return self._send(413, {"error": "The request is over 6 MB: send fewer or smaller frames, or a video URI."})
            body = self.rfile.read(n)
            if not st.ready.wait(timeout=600) or st.error:
                return self._send(503, {"error": st.error or "The model is still loading; retry when /ping is 200."})
            try:
                return self._send(200, answer(st.engine, body))
            except ContractError as e:
                return self._send(400, {"error": str(e)})
            except GhostProbeError as e:
                return self._send(500, {"error": redact(str(e))})
            except Exception as e:  # noqa: BLE001
                log.exception("invocation failed")
                return self._send(500, {"error": f"The model failed ({type(e).__name__})."})

    return Handler


def make_server(engine: str, model: str | None, host: str = "127.0.0.1", port: int = 8080) -> tuple[ThreadingHTTPServer, State]:
    st = State(engine, model)
    threading.Thread(target=st.load, daemon=True).start()
    return ThreadingHTTPServer((host, port), make_handler(st)), st


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engines.cloud.byoc_server")
    p.add_argument("--host", default=os.environ.get("GHOSTPROBE_SERVE_HOST", "0.0.0.0"))
    p.add_argument("--port", type=int, default=int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080")))
    p.add_argument("--engine", default=os.environ.get("GHOSTPROBE_SCORE_ENGINE", "transformers"))
    p.add_argument("--model", default=os.environ.get("GHOSTPROBE_HF_MODEL") or "/opt/ml/model")
    a = p.parse_args(argv)
    srv, _ = make_server(a.engine, a.model, a.host, a.port)
    print(f"ghostprobe byoc: serving {a.engine} on {a.host}:{srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
