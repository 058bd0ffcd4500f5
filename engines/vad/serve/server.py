"""The serving container: SageMaker's bring-your-own-container contract for AI-VAD.

``serve`` (the container's command) listens on port 8080:

- ``GET /ping``: 200 once the model is loaded, 503 while loading, 500 (with the reason) if loading
  failed. SageMaker waits for 200 before it sends traffic.
- ``POST /invocations`` (also ``/endpoints/<name>/invocations``, the runtime API's path, so a boto3
  client with ``endpoint_url`` reaches the container on loopback):

  - ``image/x-image`` or ``application/x-image``: one encoded frame (JPEG/PNG). It is scored as a
    pair with itself: **velocity needs two frames**, so the response says so (``note``).
  - ``application/json`` ``{"images": ["s3://bucket/key" or base64, ...], "clip": true|false,
    "maps": false}``: ``clip=true`` scores consecutive pairs (the seed's clip mode); ``false``
    scores each image alone.

  Response ``{"pred_boxes": [[x1,y1,x2,y2],...], "box_scores": [...], "pred_scores": [...]}`` for
  one image; for JSON, one list per image (or pair) in each field, plus ``pairs`` in clip mode and
  low-resolution ``maps`` (0..1, ``map_width`` cells wide) when asked.
- Limits as SageMaker applies them: a body over 6 MB → 413; scoring that would pass 60 s is stopped
  → 408; both with one sentence (use asynchronous inference for long videos: README). An
  asynchronous endpoint (deploy ``--async-output``) sets ``GHOSTPROBE_VAD_TIME_LIMIT_S`` (3600) and
  ``GHOSTPROBE_VAD_MAX_BODY_MB`` (1024) in the container's environment. Not an image,
  bad JSON, an unsupported URI or content type → 400/415 with one sentence.

Artifacts come from ``/opt/ml/model`` (``--model-dir``): the three-file AI-VAD artifact. For tests
and CPU demos ``--engine motion`` serves the weights-free motion map through the same contract
(clip mode only: it needs motion between frames).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MAX_BODY = 6 * 1024 * 1024
TIME_LIMIT_S = 60.0
IMAGE_TYPES = ("image/x-image", "application/x-image", "image/jpeg", "image/png")
VELOCITY_NOTE = "velocity needs two frames: a single image is scored as a pair with itself (zero motion)"


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def decode_image(data: bytes) -> np.ndarray:
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if arr is None:
        raise RequestError(400, "The body is not an image that can be decoded (send JPEG or PNG bytes).")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def fetch_image(ref: Any, s3_client=None) -> np.ndarray:
    if not isinstance(ref, str) or not ref:
        raise RequestError(400, "Each entry of \"images\" must be a base64 string or an s3:// URI.")
    if ref.startswith("s3://"):
        m = re.match(r"^s3://([^/]+)/(.+)$", ref)
        if not m:
            raise RequestError(400, f"The S3 URI {ref[:80]} has no bucket and key.")
        try:
            if s3_client is None:
                import boto3

                s3_client = boto3.client("s3")
            body = s3_client.get_object(Bucket=m.group(1), Key=m.group(2))["Body"].read()
        except RequestError:
            raise
        except Exception as e:
            raise RequestError(400, f"Cannot read {ref[:80]} from S3 ({type(e).__name__}).") from None
        return decode_image(body)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", ref):
        raise RequestError(400, f"Unsupported image URI {ref.split('://')[0]}://…: use s3:// or inline base64.")
    try:
        data = base64.b64decode(ref.split(",", 1)[1] if ref.startswith("data:") else ref, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, "An entry of \"images\" is neither valid base64 nor an s3:// URI.") from None
    return decode_image(data)


class Scorer:
    """What the server serves: ``score(firsts, lasts, deadline) -> list[dict]`` per pair."""

    name = "none"
    single_image_ok = True

    def load(self) -> None:
        raise NotImplementedError

    def score(self, firsts: list[np.ndarray], lasts: list[np.ndarray], cancel: threading.Event,
              want_maps: bool) -> list[dict[str, Any]]:
        raise NotImplementedError


class AiVadScorer(Scorer):
    name = "aivad"

    def __init__(self, model_dir: str | Path, map_width: int = 32):
        self.model_dir = Path(model_dir)
        self.map_width = map_width
        self.model = None
        self.cfg: dict[str, Any] = {}

    def load(self) -> None:
        from engines.vad.aivad import load_artifact

        self.model, self.cfg = load_artifact(self.model_dir)

    def score(self, firsts, lasts, cancel, want_maps):
        import cv2

        from engines.vad.aivad import score_pairs

        out = []
        # pairs of one size go through together (the internal resize follows the input size)
        for f, la in zip(firsts, lasts):
            if f.shape != la.shape:
                la = cv2.resize(la, (f.shape[1], f.shape[0]))
            r = score_pairs(self.model, f[None], la[None], self.cfg, cancel)
            if not r:
                break
            r = r[0]
            d = {"pred_boxes": [[round(float(v), 2) for v in b] for b in r.boxes.tolist()],
                 "box_scores": [round(float(s), 6) for s in r.box_scores.tolist()],
                 "labels": r.labels, "pred_score": round(r.pred_score, 6)}
            if want_maps:
                h, w = r.anomaly_map.shape
                mw = min(self.map_width, w)
                mh = max(1, int(round(h * mw / w)))
                m = cv2.resize(r.anomaly_map.astype(np.float32), (mw, mh), interpolation=cv2.INTER_AREA)
                d["map"] = np.round(m, 4).tolist()
            out.append(d)
        return out

    def info(self) -> dict[str, Any]:
        return {"random_weights": self.cfg.get("weights") == "random", "threshold": self.cfg.get("threshold")}


class MotionScorer(Scorer):
    """The weights-free motion map through the same contract (clip mode; tests and CPU demos)."""

    name = "motion"
    single_image_ok = False

    def load(self) -> None:
        from engines.vad.motion import MotionMapEngine

        self.engine = MotionMapEngine()

    def score(self, firsts, lasts, cancel, want_maps):
        frames = np.stack([firsts[0], *lasts]) if firsts else np.zeros((0, 1, 1, 3), np.uint8)
        arts, _v = self.engine.analyse(frames, [i * 0.1 for i in range(len(frames))])
        track = arts.tracks.get("anomaly", [])
        out = []
        for j in range(1, len(frames)):
            boxes = [b for b in arts.boxes if b.frame == j]
            d = {"pred_boxes": [[b.x1, b.y1, b.x2, b.y2] for b in boxes], "box_scores": [b.score for b in boxes],
                 "labels": [b.label for b in boxes], "pred_score": float(track[j][1]) if j < len(track) else 0.0}
            if want_maps and arts.maps is not None:
                d["map"] = np.round(arts.maps[j], 4).tolist()
            out.append(d)
        return out

    def info(self) -> dict[str, Any]:
        return {"random_weights": False}


class State:
    def __init__(self, scorer: Scorer, time_limit_s: float = TIME_LIMIT_S, max_body: int = MAX_BODY):
        self.scorer = scorer
        self.time_limit_s = time_limit_s
        self.max_body = max_body
        self.loaded = threading.Event()
        self.error: str | None = None
        self.lock = threading.Lock()  # one scoring at a time: the model is not re-entrant

    def load(self) -> None:
        try:
            self.scorer.load()
            self.loaded.set()
        except Exception as e:
            self.error = str(e) or type(e).__name__
            log.error("model failed to load: %s", self.error)


def handle_invocation(st: State, content_type: str, body: bytes) -> dict[str, Any]:
    ctype = (content_type or "").split(";")[0].strip().lower()
    if len(body) > st.max_body:
        raise RequestError(413, f"The request body is {len(body) / 1e6:.1f} MB; this endpoint's limit is "
                                f"{st.max_body / 1024 / 1024:.0f} MB "
                                "(send fewer frames per request, S3 URIs, or use asynchronous inference).")
    single = ctype in IMAGE_TYPES
    if single:
        if not st.scorer.single_image_ok:
            raise RequestError(400, f"The {st.scorer.name} model needs at least two frames: send "
                                    "application/json with \"clip\": true.")
        img = decode_image(body)
        firsts, lasts, pairs, clip = [img], [img], [[0, 0]], False
        want_maps = False
    elif ctype == "application/json":
        try:
            req = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise RequestError(400, "The body is not valid JSON.") from None
        if not isinstance(req, dict) or not isinstance(req.get("images"), list) or not req["images"]:
            raise RequestError(400, "The JSON body needs a non-empty \"images\" list.")
        clip = bool(req.get("clip", False))
        want_maps = bool(req.get("maps", False))
        if clip and len(req["images"]) < 2:
            raise RequestError(400, "\"clip\": true needs at least two images (consecutive frames).")
        imgs = [fetch_image(r) for r in req["images"]]
        if clip:
            firsts, lasts = imgs[:-1], imgs[1:]
            pairs = [[i, i + 1] for i in range(len(imgs) - 1)]
        else:
            if not st.scorer.single_image_ok:
                raise RequestError(400, f"The {st.scorer.name} model needs \"clip\": true (motion between frames).")
            firsts, lasts, pairs = imgs, imgs, [[i, i] for i in range(len(imgs))]
    else:
        raise RequestError(415, f"Unsupported content type {ctype or '(none)'}: use image/x-image, "
                                "application/x-image or application/json.")
    cancel = threading.Event()
    timer = threading.Timer(st.time_limit_s, cancel.set)
    t0 = time.perf_counter()
    with st.lock:
        timer.start()
        try:
            res = st.scorer.score(firsts, lasts, cancel, want_maps)
        finally:
            timer.cancel()
    if cancel.is_set() or len(res) < len(firsts):
        raise RequestError(408, f"Scoring {len(firsts)} frame pair(s) would pass the {st.time_limit_s:.0f} s "
                                "limit; send fewer frames per request or use asynchronous inference.")
    info = st.scorer.info() if hasattr(st.scorer, "info") else {}
    if single:
        r = res[0]
        out = {"pred_boxes": r["pred_boxes"], "box_scores": r["box_scores"], "pred_scores": [r["pred_score"]],
               "labels": r["labels"], "note": VELOCITY_NOTE}
    else:
        out = {"pred_boxes": [r["pred_boxes"] for r in res], "box_scores": [r["box_scores"] for r in res],
               "pred_scores": [r["pred_score"] for r in res], "labels": [r["labels"] for r in res]}
        if clip:
            out["pairs"] = pairs
        else:
            out["note"] = VELOCITY_NOTE
        if want_maps:
            out["maps"] = [r.get("map") for r in res]
    out["model"] = st.scorer.name
    out["seconds"] = round(time.perf_counter() - t0, 3)
    if info.get("random_weights"):
        out["warning"] = "random weights: scores are meaningless"
    return out


def make_handler(st: State):
    class Handler(BaseHTTPRequestHandler):
        server_version = "ghostprobe-vad/1"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet; SageMaker collects stdout
            log.info("%s " + fmt, self.address_string(), *args)

        def _send(self, status: int, obj: dict[str, Any]) -> None:
            if status >= 400 and "error" in obj:
                obj = {**obj, "message": obj["error"]}  # what AWS SDKs read as the error message
            data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if status >= 400:
                self.send_header("x-amzn-ErrorType", "ValidationError" if status < 500 else "ModelError")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.split("?")[0] != "/ping":
                return self._send(404, {"error": "Unknown path: use GET /ping or POST /invocations."})
            if st.loaded.is_set():
                return self._send(200, {"status": "ok", "model": st.scorer.name})
            if st.error:
                return self._send(500, {"status": "failed", "error": st.error})
            return self._send(503, {"status": "loading"})

        def do_POST(self):
            path = self.path.split("?")[0]
            if path != "/invocations" and not re.match(r"^/endpoints/[^/]+/invocations$", path):
                return self._send(404, {"error": "Unknown path: use POST /invocations."})
            try:
                n = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                n = -1
            if n < 0:
                return self._send(400, {"error": "Content-Length is not a number."})
            if n > st.max_body:
                self.close_connection = True
                return self._send(413, {"error": f"The request body is {n / 1e6:.1f} MB; this endpoint's limit is "
                                                 f"{st.max_body / 1024 / 1024:.0f} MB "
                                                 "(send fewer frames per request, S3 URIs, or use asynchronous "
                                                 "inference)."})
            body = self.rfile.read(n) if n else b""
            if not st.loaded.is_set():
                return self._send(503, {"error": st.error or "The model is still loading; retry when /ping is 200."})
            try:
                out = handle_invocation(st, self.headers.get("Content-Type", ""), body)
            except RequestError as e:
                return self._send(e.status, {"error": str(e)})
            except Exception as e:
                log.exception("invocation failed")
                return self._send(500, {"error": f"Scoring failed: {type(e).__name__}."})
            return self._send(200, out)

    return Handler


def make_server(scorer: Scorer, host: str = "127.0.0.1", port: int = 8080, load_async: bool = True,
                time_limit_s: float = TIME_LIMIT_S) -> tuple[ThreadingHTTPServer, State]:
    st = State(scorer, time_limit_s=time_limit_s)
    srv = ThreadingHTTPServer((host, port), make_handler(st))
    srv.daemon_threads = True
    if load_async:
        threading.Thread(target=st.load, name="vad-load", daemon=True).start()
    else:
        st.load()
    return srv, st


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="serve", description="AI-VAD SageMaker serving container")
    p.add_argument("mode", nargs="?", default="serve", help="SageMaker runs the image with 'serve'")
    p.add_argument("--model-dir", default="/opt/ml/model")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--engine", choices=("aivad", "motion"), default="aivad")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    scorer: Scorer = AiVadScorer(a.model_dir) if a.engine == "aivad" else MotionScorer()
    import os

    # an asynchronous endpoint (deploy --async-output) allows 1 GB bodies and an hour per request
    limit_s = float(os.environ.get("GHOSTPROBE_VAD_TIME_LIMIT_S") or TIME_LIMIT_S)
    max_mb = float(os.environ.get("GHOSTPROBE_VAD_MAX_BODY_MB") or MAX_BODY / 1024 / 1024)
    srv, st = make_server(scorer, a.host, a.port, time_limit_s=limit_s)
    st.max_body = int(max_mb * 1024 * 1024)
    log.info("listening on %s:%d (%s, model dir %s)", a.host, a.port, a.engine, a.model_dir)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
