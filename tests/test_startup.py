"""Start-up order: the server answers HTTP before any demo clip is rendered (issue 9, item 2).

``ghostprobe serve`` decides at once that an empty library needs its demo clips (the page shows
"preparing"), but the rendering waits until the server answers, so it does not compete with the start-up
for the CPU. Checked on the real app's log and on a real Library.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.appserver import RunningApp

pytestmark = pytest.mark.slow


def test_demo_clips_render_only_after_the_server_answers(tmp_path):
    with RunningApp(tmp_path, wait_demo=False) as app:
        deadline = time.monotonic() + 240
        while "demo clips: rendering" not in (log := app.log_path.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "demo clips: rendering" in log, app.log_tail()
        preparing = log.index("demo clips: preparing")
        answering = log.index("Running on local URL")  # Gradio's line once its server is up
        rendering = log.index("demo clips: rendering")
        assert preparing < answering < rendering


def test_a_held_demo_rendering_writes_nothing_until_released(env_dirs):
    from reports.store import Store
    from webapp.config import load_config
    from webapp.library import Library

    cfg = load_config()
    st = Store(cfg.db_path)
    try:
        lib = Library(cfg, st)
        gate = threading.Event()
        assert lib.start_demo_clips(after=gate).state == "preparing"
        time.sleep(1.0)
        assert lib.demo_status.state == "preparing"
        assert not [p for p in cfg.library_roots[0].rglob("*") if p.is_file()]  # nothing rendered yet
        assert lib.videos() == []
        gate.set()
        deadline = time.monotonic() + 240
        while lib.demo_status.preparing and time.monotonic() < deadline:
            time.sleep(0.2)
        s = lib.demo_status
        assert s.state == "ready", s
        assert s.clips >= 6 and len(list(cfg.demo_dir.glob("*.mp4"))) == s.clips
    finally:
        st.close()
