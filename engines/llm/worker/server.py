#!/usr/bin/env python
"""GhostProbe GPU worker: serves one video LLM over a tiny HTTP+JSON contract.

Standard library only (http.server, json, base64) and nothing of GhostProbe is imported, so it runs in
the model's own environment (VideoLLaMA2 pins transformers 4.40, Video-LLaMA v1 pins 4.28):

    python server.py --adapter videollama2 --model DAMO-NLP-SG/VideoLLaMA2.1-7B-16F --port 8008
    python server.py --adapter echo --port 0      # stand-in that echoes what it got; prints the port

Contract (JSON in, JSON out):

    GET  /health   → {"ok": true, "adapter", "model", "device", "stand_in"} plus what the adapter reports of
                     itself (revision, model_type, num_frames, dtype, attention, quantization, ...)
    POST /v1/chat  ← {"frames": [base64 JPEG, ...], "timestamps": [s, ...], "messages": [{"role", "content"}],
                      "max_new_tokens": 512, "temperature": 0.0, "stream": false}
                   → {"text", "prompt_tokens", "completion_tokens", "latency_s", "adapter", "model", "device"}
                   with "stream": true → 200, application/x-ndjson, chunked: one {"delta": "..."} line per
                   piece of text as the model produces it, then one final line: the object above plus
                   "done": true, or {"error": "one sentence", "status": 500|507} if the model failed midway
    errors         → {"error": "one sentence"} with 400 (bad request), 404, 405, 413 (too large), 500 (model failed)

One request runs on the model at a time (a lock); others wait their turn.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import importlib
import json
import os
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ADAPTERS = ("echo", "videollama2", "videollama_v1")
MAX_FRAMES = 256


class BadRequest(Exception):
    pass


def load_adapter(name: str, model: str | None, device: str | None, options: dict[str, Any]):
    if name not in ADAPTERS:
        raise SystemExit(f"Unknown adapter {name!r}; choose one of {', '.join(ADAPTERS)}.")
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    module = importlib.import_module(f"adapters.{name}")
    return module.Adapter(model=model, device=device, options=options)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


def parse_chat_request(body: Any) -> dict[str, Any]:
    """Validate a /v1/chat body; raise BadRequest with one sentence."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    frames_b64 = body.get("frames")
    if not isinstance(frames_b64, list) or not frames_b64:
        raise BadRequest("'frames' must be a non-empty list of base64 JPEG strings.")
    if len(frames_b64) > MAX_FRAMES:
        raise BadRequest(f"Too many frames ({len(frames_b64)}); send at most {MAX_FRAMES}.")
    frames: list[bytes] = []
    for i, f in enumerate(frames_b64):
        if not isinstance(f, str):
            raise BadRequest(f"frames[{i}] must be a base64 string.")
        if f.startswith("data:"):
            f = f.split(",", 1)[-1]
        try:
            data = base64.b64decode(f, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"frames[{i}] is not valid base64.") from None
        if data[:2] != b"\xff\xd8":
            raise BadRequest(f"frames[{i}] is not a JPEG image.")
        frames.append(data)
    ts = body.get("timestamps")
    if ts is None:
        ts = [float(i) for i in range(len(frames))]
    if not isinstance(ts, list) or len(ts) != len(frames) or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) for t in ts):
        raise BadRequest("'timestamps' must be a list of numbers, one per frame.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list of {role, content} objects.")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or not isinstance(
                m.get("content"), str):
            raise BadRequest(f"messages[{i}] must be an object with role system|user|assistant and a string content.")
    if not any(m["role"] == "user" for m in messages):
        raise BadRequest("'messages' needs at least one user turn.")
    max_new = body.get("max_new_tokens", 512)
    if not isinstance(max_new, int) or isinstance(max_new, bool) or not 1 <= max_new <= 8192:
        raise BadRequest("'max_new_tokens' must be an integer from 1 to 8192.")
    temp = body.get("temperature", 0.0)
    if not isinstance(temp, (int, float)) or isinstance(temp, bool) or not 0 <= temp <= 5:
        raise BadRequest("'temperature' must be a number from 0 to 5.")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be true or false.")
    return {"frames": frames, "timestamps": [float(t) for t in ts], "messages": messages,
            "max_new_tokens": max_new, "temperature": float(temp), "stream": stream}


def run_chat(adapter, req: dict[str, Any], on_text=None) -> dict[str, Any]:
    """Call the adapter; adapters with ``streams = True`` take ``on_text`` and call it per text piece."""
    kwargs: dict[str, Any] = {"max_new_tokens": req["max_new_tokens"], "temperature": req["temperature"]}
    if on_text is not None and getattr(adapter, "streams", False):
        kwargs["on_text"] = on_text
    out = adapter.chat(req["frames"], req["timestamps"], req["messages"], **kwargs)
    if on_text is not None and not getattr(adapter, "streams", False) and out.get("text"):
        on_text(str(out["text"]))  # a non-streaming adapter's answer arrives as one piece
    return out


_EXTRA_FIELDS = ("visual_tokens", "frames_used", "preprocess_s", "generate_s")
# what an adapter's describe() may add to /health (GhostProbe's engine identity reads these)
_HEALTH_EXTRA = ("revision", "model_type", "num_frames", "dtype", "attention", "vision_attention", "quantization",
                 "package", "load_s")


def make_handler(adapter, max_body: int, lock: threading.Lock, quiet: bool = False):
    info = adapter.describe()

    class Handler(BaseHTTPRequestHandler):
        server_version = "GhostProbeWorker/1"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # noqa: A003
            if not quiet:
                sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

        def _send(self, code: int, obj: dict[str, Any]) -> None:
            data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            if self.path.rstrip("/") in ("/health", ""):
                health = {"ok": True, "adapter": info.get("adapter"), "model": info.get("model"),
                          "device": info.get("device"), "stand_in": bool(info.get("stand_in", False))}
                health.update({k: info[k] for k in _HEALTH_EXTRA if info.get(k) is not None})
                self._send(200, health)
            elif self.path.rstrip("/") == "/v1/chat":
                self._send(405, {"error": "Use POST for /v1/chat."})
            else:
                self._send(404, {"error": f"No such endpoint {self.path}; use GET /health or POST /v1/chat."})

        def do_POST(self):  # noqa: N802
            if self.path.rstrip("/") != "/v1/chat":
                self._send(404, {"error": f"No such endpoint {self.path}; use POST /v1/chat."})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length <= 0:
                self._send(400, {"error": "The request has no body (Content-Length missing or zero)."})
                return
            if length > max_body:
                self._send(413, {"error": f"The request is {length} bytes; the limit is {max_body} bytes."})
                self.close_connection = True
                return
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw.decode("utf-8"))
                req = parse_chat_request(body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                self._send(400, {"error": "The body is not valid JSON."})
                return
            except BadRequest as e:
                self._send(400, {"error": str(e)})
                return
            if req["stream"]:
                self._stream(req)
                return
            start = time.perf_counter()
            try:
                with lock:
                    out = run_chat(adapter, req)
            except Exception as e:  # noqa: BLE001  the model failed: say so in one sentence
                code, msg = self._failure(e)
                self._send(code, {"error": msg})
                return
            self._send(200, self._final(out, time.perf_counter() - start))

        def _failure(self, e: BaseException) -> tuple[int, str]:
            traceback.print_exc()
            msg = _first_line(e)
            return (507 if "out of memory" in msg.lower() else 500), f"The {info.get('adapter')} adapter failed: {msg}"

        def _final(self, out: dict[str, Any], latency: float) -> dict[str, Any]:
            final = {"text": str(out.get("text", "")), "prompt_tokens": out.get("prompt_tokens"),
                     "completion_tokens": out.get("completion_tokens"), "latency_s": round(latency, 4),
                     "adapter": info.get("adapter"), "model": info.get("model"),
                     "device": info.get("device"), "stand_in": bool(info.get("stand_in", False))}
            final.update({k: out[k] for k in _EXTRA_FIELDS if k in out})
            return final

        def _chunk(self, obj: dict[str, Any]) -> None:
            data = json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def _stream(self, req: dict[str, Any]) -> None:
            """NDJSON over chunked transfer: {"delta"} lines as the model writes, then the final object."""
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            start = time.perf_counter()
            try:
                try:
                    with lock:
                        out = run_chat(adapter, req, on_text=lambda piece: self._chunk({"delta": piece}))
                    final = {**self._final(out, time.perf_counter() - start), "done": True}
                except (BrokenPipeError, ConnectionResetError):
                    raise
                except Exception as e:  # noqa: BLE001  the model failed midway: the last line says so
                    code, msg = self._failure(e)
                    final = {"error": msg, "status": code}
                self._chunk(final)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client went away; the model's turn is over anyway

    return Handler


def parse_options(pairs: list[str]) -> dict[str, str]:
    out = {}
    for p in pairs or []:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise SystemExit(f"--option must look like key=value, not {p!r}.")
        out[key.strip()] = value.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="GhostProbe GPU worker for video LLMs that need their own environment.")
    ap.add_argument("--adapter", required=True, choices=ADAPTERS)
    ap.add_argument("--model", help="model id / path (videollama2) or eval config YAML (videollama_v1)")
    ap.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 to serve the network)")
    ap.add_argument("--port", type=int, default=8008, help="0 picks a free port (printed on start)")
    ap.add_argument("--device", default=None, help="passed to the adapter (default: its own choice)")
    ap.add_argument("--max-body-mb", type=float, default=200.0)
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="adapter option, repeatable")
    ap.add_argument("--quiet", action="store_true", help="no per-request log lines")
    args = ap.parse_args(argv)

    adapter = load_adapter(args.adapter, args.model, args.device, parse_options(args.option))
    handler = make_handler(adapter, int(args.max_body_mb * 1024 * 1024), threading.Lock(), quiet=args.quiet)
    httpd = ThreadingHTTPServer((args.host, args.port), handler)
    httpd.daemon_threads = True
    host, port = httpd.server_address[:2]
    info = adapter.describe()
    print(f"ghostprobe-worker ready on http://{host}:{port} adapter={info.get('adapter')} "
          f"model={info.get('model')} device={info.get('device')}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
