"""A loopback HTTP server standing in for the Hugging Face hub (``HF_ENDPOINT=http://127.0.0.1:PORT``).

It serves the few endpoints ``huggingface_hub.snapshot_download`` and ``HfApi.model_info`` /
``list_repo_tree`` use, for small fake repositories made by the test: repo info
(``/api/models/{repo}[/revision/{rev}]``), the recursive tree listing
(``/api/models/{repo}/tree/{rev}``) and file contents (``HEAD``/``GET /{repo}/resolve/{rev}/{path}``).
Every request is recorded, so a test can also assert that nothing reached the "hub".
An optional per-chunk delay makes a download last long enough to watch its progress bar.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]], chunk_delay_s: float = 0.0, chunk: int = 64 * 1024):
        self.repos = repos
        self.sha = {r: hashlib.sha1(r.encode()).hexdigest() for r in repos}  # one commit per repo
        self.requests: list[tuple[str, str]] = []
        self.chunk_delay_s = chunk_delay_s
        self.chunk = chunk
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_HEAD(self):
                hub._handle(self, head=True)

            def do_GET(self):
                hub._handle(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- routing -------------------------------------------------------------------------------------
    def _send_json(self, h, obj, status: int = 200, head: bool = False) -> None:
        body = json.dumps(obj).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _not_found(self, h, head: bool) -> None:
        h.send_response(404)
        body = b'{"error": "Repository not found"}'
        h.send_header("Content-Type", "application/json")
        h.send_header("X-Error-Code", "RepoNotFound")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _repo_of(self, parts: list[str]) -> tuple[str | None, list[str]]:
        for r in self.repos:
            n = len(r.split("/"))
            if "/".join(parts[:n]) == r:
                return r, parts[n:]
        return None, parts

    def _handle(self, h, head: bool) -> None:
        url = urlparse(h.path)
        self.requests.append((h.command, url.path))
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts[:2] == ["api", "models"]:
            repo, rest = self._repo_of(parts[2:])
            if repo is None:
                return self._not_found(h, head)
            files = self.repos[repo]
            if not rest or rest[0] == "revision":
                return self._send_json(h, {
                    "id": repo, "modelId": repo, "sha": self.sha[repo], "private": False, "gated": False,
                    "disabled": False, "downloads": 0, "likes": 0, "tags": [], "library_name": "transformers",
                    "siblings": [{"rfilename": p} for p in sorted(files)]}, head=head)
            if rest[0] == "tree":
                return self._send_json(h, [
                    {"type": "file", "oid": hashlib.sha1(b).hexdigest(), "size": len(b), "path": p}
                    for p, b in sorted(files.items())], head=head)
            return self._not_found(h, head)
        repo, rest = self._repo_of(parts)
        if repo is None or len(rest) < 3 or rest[0] != "resolve":
            return self._not_found(h, head)
        path = "/".join(rest[2:])
        data = self.repos[repo].get(path)
        if data is None:
            h.send_response(404)
            h.send_header("X-Error-Code", "EntryNotFound")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
        h.send_header("X-Repo-Commit", self.sha[repo])
        h.end_headers()
        if head:
            return
        for i in range(0, len(data), self.chunk):
            h.wfile.write(data[i:i + self.chunk])
            h.wfile.flush()
            if self.chunk_delay_s:
                time.sleep(self.chunk_delay_s)


def tiny_repo(weights_bytes: int = 256 * 1024, seed: int = 0) -> dict[str, bytes]:
    """The files of a small fake model repository (a config and opaque weight bytes)."""
    import random

    rnd = random.Random(seed)
    return {
        "config.json": json.dumps({"model_type": "fake", "architectures": ["FakeForTest"]}).encode(),
        "generation_config.json": b'{"max_new_tokens": 8}',
        "model.safetensors": bytes(rnd.getrandbits(8) for _ in range(weights_bytes)),
        "README.md": b"# fake model for tests\n",
    }
