"""First start on an empty library: the page answers before the demo clips exist, and they appear afterwards.

The real app runs as a process (``ghostprobe serve``); the order is read from what the server says
(its ``/demo_status`` endpoint through gradio_client, and its log), never from timing guesses.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.appserver import RunningApp

pytestmark = pytest.mark.slow


def _status(client) -> dict:
    return client.predict(api_name="/demo_status")


def test_page_answers_before_the_demo_clips_and_they_appear_afterwards(tmp_path):
    from gradio_client import Client

    with RunningApp(tmp_path, wait_demo=False) as app:
        # RunningApp returned at the first HTTP 200 of "/": the clips are still being rendered.
        assert httpx.get(app.url + "/", timeout=30).status_code == 200
        log = app.log_path.read_text()
        assert "demo clips: preparing" in log and "demo clips: ready" not in log
        assert not list((app.library / "demo").glob("*.mp4"))  # nothing half-written shows in the library
        client = Client(app.url, verbose=False)
        first = _status(client)
        videos_early = client.predict(label_set="", label_filter="all", api_name="/library_videos")
        deadline = time.monotonic() + 240
        while (s := _status(client))["state"] == "preparing" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert s["state"] == "ready", s
        assert s["clips"] >= 6 and s["seconds"] > 0
        videos = client.predict(label_set="demo", label_filter="all", api_name="/library_videos")
        assert len(videos) == s["clips"] and all(v["origin"] == "demo" for v in videos)
        assert sum(bool(v["label"] and v["label"]["ghost_probing"]) for v in videos) >= 1
        # whatever the early answers said, they were consistent with "preparing": no clip without its label set
        if first["state"] == "preparing":
            assert len(videos_early) <= len(videos)
        assert "demo clips: ready" in app.log_path.read_text()


@pytest.mark.browser
def test_the_preparing_notice_shows_in_library_and_chat_then_goes_away(tmp_path, page):
    with RunningApp(tmp_path, wait_demo=False) as app:
        page.goto(app.url + "/?__theme=light")
        if "demo clips: ready" in app.log_path.read_text():
            pytest.skip("the demo clips were ready before the page loaded (nothing to see)")
        notice = page.locator("#library-demo-notice")
        notice.wait_for(state="visible")
        assert "正在准备演示视频" in notice.inner_text()
        page.get_by_role("tab", name="对话检测").click()
        page.locator("#chat-demo-notice").wait_for(state="visible")
        assert "正在准备演示视频" in page.locator("#chat-demo-notice").inner_text()
        # when the background rendering finishes, the notices go and the clips appear without a reload
        page.locator("#chat-demo-notice").wait_for(state="hidden", timeout=240_000)
        assert "demo clips: ready" in app.log_path.read_text()
        page.locator("#chat-video input").click()
        page.get_by_role("option").filter(has_text="synth_").first.wait_for()
        page.keyboard.press("Escape")
        page.get_by_role("tab", name="视频库").click()
        assert not page.locator("#library-demo-notice").is_visible()
        page.wait_for_function("() => (document.querySelector('#lib-gallery')?.innerText || '').includes('synth_')",
                               timeout=60_000)
        assert page.locator("#lib-label-set input").input_value().startswith("demo")
        # a page opened afterwards shows no notice at all
        page.goto(app.url + "/?__theme=light")
        page.wait_for_function("() => (document.querySelector('#lib-gallery')?.innerText || '').includes('synth_')",
                               timeout=60_000)
        assert not page.locator("#library-demo-notice").is_visible()


def test_second_start_needs_no_demo_clips(tmp_path):
    with RunningApp(tmp_path) as app:
        assert app.wait_for_demo() == "ready"
    with RunningApp(tmp_path) as again:
        assert again.wait_for_demo() == "not needed"
        assert "demo clips: preparing" not in again.log_path.read_text()
