"""With a login (GHOSTPROBE_AUTH), nothing about the library reaches a visitor before login (issue 9 item 13).

The real app runs as a subprocess on loopback with a library clip, a label set and the bundled prompts
whose names are distinctive; a raw HTTP client without a session cookie fetches every page and API
route a visitor can reach and none of those names may appear. The same routes after login do carry
them, so the check can fail.
"""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.appserver import ROOT, RunningApp
from tests.media import write_h264_mp4

CLIP = "zebra_crossing_secretclip"
LABEL_SET = "hidden-set-kestrel"
# what must not reach an anonymous visitor: a video name, a label set, prompt versions, endpoint names
SECRETS = (CLIP, LABEL_SET, "ghost_probing@", "library_videos", "run_eval_api", "detect_video", "lab_matrix")
ANON_GETS = ("/", "/?view=api", "/?view=api&all_endpoints=true", "/gradio_api/runs", "/config",
             "/gradio_api/info", "/gradio_api/info?all_endpoints=true", "/gradio_api/openapi.json",
             "/manifest.json", "/gradio_api/app_id", "/gradio_api/user", "/gradio_api/startup-events",
             "/gradio_api/queue/status", "/monitoring", "/gradio_api/upload_progress", "/login_check",
             "/gradio_api/login_check", "/token", "/gradio_api/token")


@pytest.mark.slow
def test_login_page_and_api_reveal_nothing_before_login(tmp_path):
    app = RunningApp(tmp_path, env={"GHOSTPROBE_AUTH": "alice:s3cret-pass"})
    write_h264_mp4(app.library / f"{CLIP}.mp4")
    labels = tmp_path / "labels.csv"
    labels.write_text(f"video_id,ground_truth_label\n{CLIP}.mp4,2s: ghost probing\n")
    r = subprocess.run([sys.executable, "-m", "webapp.cli", "labels", "import", str(labels), "--set", LABEL_SET],
                       cwd=ROOT, env={**app.env}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with app:
        with httpx.Client(base_url=app.url, timeout=60) as anon:
            for route in ANON_GETS:
                res = anon.get(route)
                body = res.text
                leaked = [s for s in SECRETS if s in body]
                assert not leaked, f"GET {route} ({res.status_code}) shows {leaked} before login"
            head = anon.head("/")
            assert head.status_code == 200
            page = anon.get("/").text
            assert '"auth_required":true' in page  # the login page itself still renders
            for route in ("/gradio_api/call/library_videos", "/gradio_api/run/library_videos",
                          "/gradio_api/api/library_videos"):
                res = anon.post(route, json={"data": ["", "all"]})
                assert res.status_code in (401, 403, 404), (route, res.status_code)
                assert not [s for s in SECRETS[:2] if s in res.text], route
            assert anon.get("/gradio_api/info").status_code == 401

        with httpx.Client(base_url=app.url, timeout=60) as user:
            assert user.post("/login", data={"username": "alice", "password": "s3cret-pass"}).status_code == 200
            page = user.get("/").text
            assert "library_videos" in page and "ghost_probing@" in page  # the full app after login
            info = user.get("/gradio_api/info")
            assert info.status_code == 200 and "/library_videos" in info.json()["named_endpoints"]

        from gradio_client import Client

        client = Client(app.url, auth=("alice", "s3cret-pass"), verbose=False)
        rows = client.predict(label_set=LABEL_SET, label_filter="all", api_name="/library_videos")
        assert [row["video_id"] for row in rows] == [f"{CLIP}.mp4"] or CLIP in str(rows)
    log = app.log_path.read_text()
    assert "s3cret-pass" not in log and "Traceback" not in log, app.log_tail()


def test_login_gate_strips_only_the_api_description():
    """The middleware on its own: an anonymous HTML page loses the inlined API description, nothing else."""
    from webapp.server import LoginGate

    body = (b'<script>window.gradio_config = {"auth_required":true};</script>'
            b'<script>window.gradio_api_info = {"named_endpoints":{"/library_videos":{"x":"a;b"}}};</script><p>ok</p>')
    out = LoginGate._strip(body)
    assert b"library_videos" not in out
    assert out.startswith(b'<script>window.gradio_config = {"auth_required":true};</script>')
    assert out.endswith(b"</script><p>ok</p>")
    assert os.fsencode("window.gradio_api_info") in out
