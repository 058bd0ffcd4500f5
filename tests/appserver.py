"""Start the real app (``ghostprobe serve``) as a subprocess on a free loopback port, for browser and client tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningApp:
    def __init__(self, workdir: Path, library_roots: list[Path] | None = None, env: dict[str, str] | None = None,
                 startup_timeout: float = 240.0, wait_demo: bool = True):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = self.workdir / "data"
        self.library = self.workdir / "library"
        self.library.mkdir(parents=True, exist_ok=True)
        roots = [self.library, *(library_roots or [])]
        self.env = {**os.environ, "GHOSTPROBE_DATA_DIR": str(self.data),
                    "GHOSTPROBE_LIBRARY": os.pathsep.join(str(r) for r in roots),
                    "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
                    **(env or {})}
        for k in ("GHOSTPROBE_DB", "GHOSTPROBE_UPLOADS", "GHOSTPROBE_CACHE"):
            self.env.pop(k, None)
        self.log_path = self.workdir / "server.log"
        self.timeout = startup_timeout
        self.wait_demo = wait_demo  # the demo clips render in the background after the first HTTP 200
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "RunningApp":
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "webapp.cli", "serve", "--port", str(self.port)],
                                     cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "/", timeout=2).status_code in (200, 401):
                    if self.wait_demo:
                        self.wait_for_demo(deadline)
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"the app did not answer within {self.timeout:.0f} s:\n{self.log_tail()}")

    def wait_for_demo(self, deadline: float | None = None) -> str:
        """Wait until the server says where its demo clips stand (ready, not needed or failed)."""
        deadline = deadline or time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            for state in ("ready", "not needed", "failed"):
                if f"demo clips: {state}" in text:
                    return state
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with {self.proc.returncode}:\n{self.log_tail()}")
            time.sleep(0.2)
        raise RuntimeError(f"the demo clips were not ready within {self.timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if getattr(self, "log", None):
            self.log.close()
