"""The 对话检测 (Chat & Detect) tab in headless Chromium against the real app (one app for the module).

The app runs a tiny random Qwen2.5-VL (tests/tiny_models.py) as engine "transformers": its answers are
noise by design, so the verdict must show as 无法解析 (unparsed), never as 否. The store is checked through
the app's own gr.api endpoints (DuckDB allows one process).
"""

from __future__ import annotations

import re
import time

import pytest

import tiny_models
from tests.appserver import RunningApp

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CLIP = "synth_emerge_pedestrian_s0.mp4"
STOPPED = "stopped by the user before the answer was complete"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from engines.synth import render_clip

    work = tmp_path_factory.mktemp("chatapp")
    model = tiny_models.build("qwen2_5_vl", work / "models")
    # One generated positive clip in the demo folder (the same generator and settings as the demo set);
    # a library that already holds a video is not filled with the whole demo set, which keeps start-up short.
    info = render_clip(work / "library" / "demo" / CLIP, "emerge_pedestrian", seed=0, duration_s=5.0, onset_s=2.0)
    env = {"GHOSTPROBE_HF_MODEL": str(model), "GHOSTPROBE_ALLOW_DOWNLOAD": "0"}
    for k in ("GHOSTPROBE_OPENAI_BASE_URL", "GHOSTPROBE_OPENAI_API_KEY", "OPENAI_API_KEY", "GHOSTPROBE_ENGINE"):
        env[k] = ""
    with RunningApp(work, env=env) as running:
        running.model = str(model)
        running.clip_info = info
        yield running


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client

    return Client(app.url, verbose=False)


def _history(client, video_id=CLIP):
    return client.predict(video_id=video_id, limit=50, api_name="/chat_history")


def _open(page, app):
    page.goto(app.url + "/?__theme=light")
    page.get_by_role("tab", name="对话检测").click()
    # selecting the tab refreshes the engine list; the .then() fills the engine line
    page.wait_for_function("() => { const e = document.querySelector('#chat-engine-info');"
                           " return e && e.innerText.trim().length > 0; }", timeout=120_000)


def _pick(page, elem: str, option: str) -> None:
    page.locator(f"#{elem} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def _set_number(page, elem: str, value: int) -> None:
    box = page.locator(f"#{elem} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    page.wait_for_function(f"() => document.querySelector('#{elem} input[type=number]').value == '{value}'")


def _setup(page, app, engine: str, video: str = CLIP, frames: int | None = 4, max_new: int = 512) -> None:
    _open(page, app)
    _pick(page, "chat-engine", engine)
    page.wait_for_function(f"() => document.querySelector('#chat-engine-info').innerText.includes('{engine}')")
    if engine == "transformers":
        page.wait_for_function("(m) => document.querySelector('#chat-model textarea, #chat-model input').value === m",
                               arg=app.model)
    time.sleep(0.3)  # the engine's defaults land in the frames slider first; then ours
    if frames is not None:
        _set_number(page, "chat-frames", frames)
    _set_number(page, "chat-max-new", max_new)
    _pick(page, "chat-video", video)
    page.wait_for_function("() => { const v = document.querySelector('#chat-player video'); return v && v.src; }",
                           timeout=120_000)


def _status(page) -> str:
    return page.locator("#chat-status").inner_text().strip()


def _ask(page, text: str) -> None:
    q = page.locator("#chat-input textarea, #chat-input input").first
    q.fill(text)
    q.press("Enter")


WATCH_JS = """() => {
  window.__lens = [];
  const el = document.querySelector('#chat-chatbot');
  const look = () => { const b = el.querySelectorAll('.message.bot');
    if (b.length) window.__lens.push(b[b.length - 1].innerText.length); };
  new MutationObserver(look).observe(el, {subtree: true, childList: true, characterData: true});
}"""


def test_chat_streams_follow_ups_keep_context_and_turns_are_logged(page, app, client):
    _setup(page, app, "transformers")
    page.evaluate(WATCH_JS)
    _ask(page, "视频里有什么？")
    page.wait_for_function("() => document.querySelector('#chat-status').innerText.includes('第 1 轮')",
                           timeout=180_000)
    lens = page.evaluate("window.__lens")
    growing = sorted({n for n in lens if n > 0})
    assert len(growing) >= 3, f"the answer did not stream: lengths seen {lens[:20]}"
    assert "输出 512 token" in _status(page) and "⚠️" not in _status(page)
    bots = page.locator("#chat-chatbot .message.bot")
    shown = bots.last.inner_text()

    [chat] = [c for c in _history(client) if c["turns"][0]["question"] == "视频里有什么？"]
    first = chat["turns"][0]
    assert (first["kind"], first["engine"], first["model"], first["error"]) == ("chat", "transformers", app.model, None)
    assert first["answer"] and first["answer"].split()[:6] == shown.split()[:6]
    assert first["sampling"]["num_frames"] == 4 and first["options"]["max_new_tokens"] == 512
    assert first["prompt_hash"] and first["revision"] and first["latency_s"] > 0 and first["completion_tokens"] == 512

    _ask(page, "左边是什么？")
    page.wait_for_function("() => document.querySelector('#chat-status').innerText.includes('第 2 轮')",
                           timeout=180_000)
    [chat] = [c for c in _history(client) if c["chat_id"] == chat["chat_id"]]
    second = chat["turns"][1]
    assert second["question"] == "左边是什么？" and second["error"] is None
    assert second["prompt_tokens"] > first["prompt_tokens"]  # the first question and answer went along
    assert page.locator("#chat-chatbot .message.user").count() == 2
    # the history table lists this chat; after 新对话, selecting it loads its turns back
    page.wait_for_function("(id) => document.querySelector('#chat-history').innerText.includes(id)",
                           arg=chat["chat_id"])
    page.locator("#chat-clear").click()
    page.wait_for_function("() => document.querySelectorAll('#chat-chatbot .message.user').length === 0")
    page.locator('#chat-history [data-row="0"][data-col="5"]').click()
    page.wait_for_function("() => document.querySelector('#chat-status').innerText.includes('已载入对话')")
    assert chat["chat_id"] in _status(page)
    page.wait_for_function("() => document.querySelectorAll('#chat-chatbot .message.user').length === 2")
    assert "左边是什么？" in page.locator("#chat-chatbot").inner_text()


def test_detect_shows_unparsed_honestly_with_the_raw_output(page, app, client):
    _setup(page, app, "transformers", max_new=128)
    page.locator("#chat-detect").click()
    page.wait_for_function("() => document.querySelector('#chat-status').innerText.includes('检测完成')",
                           timeout=180_000)
    assert page.locator("#verdict-card .verdict-answer").inner_text().strip() == "无法解析 (unparsed)"
    card = page.locator("#verdict-card").inner_text()
    assert "不算作“否”" in card and "是否鬼探头：否" not in card
    assert not page.locator("#chat-onset").is_visible()
    call = page.locator("#chat-call").inner_text()
    assert "输出 128 token" in call and "ghost_probing@" in call

    [chat] = [c for c in _history(client) if any(t["kind"] == "detect" for t in c["turns"])][:1]
    det = chat["turns"][-1]
    assert det["kind"] == "detect" and det["verdict"]["status"] == "unparsed" and det["verdict"]["ghost_probing"] is None
    assert det["completion_tokens"] == 128 and det["prompt_hash"]

    page.locator("#verdict-raw").get_by_text("原始输出").click()
    page.wait_for_function("() => { const e = document.querySelector('#chat-raw'); return e && e.offsetParent !== null"
                           " && e.innerText.trim().length > 0; }")
    raw = page.locator("#chat-raw").inner_text()
    assert " ".join(det["answer"].split()[:5]) in " ".join(raw.split())


def test_stop_cancels_streaming_and_logs_the_partial_answer(page, app, client):
    _setup(page, app, "transformers", frames=2, max_new=2048)
    _ask(page, "请详细描述")
    page.wait_for_function("() => { const b = document.querySelectorAll('#chat-chatbot .message.bot');"
                           " return b.length && b[b.length - 1].innerText.length > 200; }", timeout=180_000)
    page.locator("#chat-stop").click()
    page.wait_for_function("() => document.querySelector('#chat-status').innerText.includes('已停止')")
    time.sleep(1.0)
    before = page.locator("#chat-chatbot .message.bot").last.inner_text()
    time.sleep(2.0)
    assert page.locator("#chat-chatbot .message.bot").last.inner_text() == before  # nothing streams any more
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        turns = [t for c in _history(client) for t in c["turns"] if t["question"] == "请详细描述"]
        if turns:
            break
        time.sleep(0.5)
    [t] = turns
    assert t["error"] == STOPPED and t["answer"] and len(t["answer"].split()) < 2048 and t["latency_s"] > 0


def test_unavailable_engine_bad_upload_and_good_upload(page, app, client, tmp_path):
    from media import write_mp4v, write_text_renamed

    _open(page, app)
    _pick(page, "chat-engine", "openai（不可用）")
    page.wait_for_function("() => document.querySelector('#chat-engine-info').innerText.includes('不可用')")
    assert "GHOSTPROBE_OPENAI" in page.locator("#chat-engine-info").inner_text()  # the reason, one sentence
    page.wait_for_function("() => document.querySelector('#chat-detect').disabled")
    assert page.locator("#chat-send").is_disabled()

    res = client.predict(video_id=CLIP, engine="openai", prompt="", model="", api_name="/detect_video")
    assert res["status"] == "error" and res["ghost_probing"] is None and "GHOSTPROBE_OPENAI" in res["reason"]
    logged = [t for c in _history(client) for t in c["turns"] if t["engine"] == "openai"]
    assert logged and logged[0]["error"] == res["reason"]

    bad = write_text_renamed(tmp_path / "notes.mp4")
    page.locator("#chat-upload input[type=file]").set_input_files(str(bad))
    page.wait_for_function("() => document.querySelector('#chat-status').innerText.includes('notes.mp4')",
                           timeout=60_000)
    status = _status(page)
    assert status.startswith("⚠️") and len(status.splitlines()) == 1 and "Traceback" not in status

    good = write_mp4v(tmp_path / "my_chat_upload.mp4")
    page.locator("#chat-upload input[type=file]").set_input_files(str(good))
    page.wait_for_function("() => document.querySelector('#chat-status').innerText.includes('my_chat_upload.mp4')",
                           timeout=60_000)
    page.wait_for_function("() => document.querySelector('#chat-video input').value === 'my_chat_upload.mp4'")
    page.wait_for_function("() => { const v = document.querySelector('#chat-player video'); return v && v.src; }",
                           timeout=120_000)


def test_api_detect_video_returns_the_verdict_and_call(client, app):
    res = client.predict(video_id=CLIP, engine="transformers", prompt="ghost_probing@1", model="",
                         api_name="/detect_video")
    assert res["status"] == "unparsed" and res["ghost_probing"] is None and res["raw"]
    assert res["prompt"] == "ghost_probing@1" and res["model"] == app.model and res["video_id"] == CLIP
    assert res["call"]["latency_s"] > 0 and res["call"]["prompt_tokens"] > 0 and res["call"]["completion_tokens"] > 0
    missing = client.predict(video_id="nope.mp4", engine="transformers", prompt="", model="", api_name="/detect_video")
    assert missing["status"] == "error" and "nope.mp4" in missing["reason"]


def test_baseline_verdict_yes_and_onset_button_seeks_the_player(page, app, client):
    from engines.registry import all_engines

    if "baseline" not in all_engines():
        pytest.skip("engine 'baseline' is not registered yet (engines/baseline/engine.py)")
    _setup(page, app, "baseline", frames=None)
    page.locator("#chat-detect").click()
    page.wait_for_function("() => document.querySelector('#chat-status').innerText.includes('检测完成')",
                           timeout=180_000)
    assert page.locator("#verdict-card .verdict-answer").inner_text().strip() == "是"
    btn = page.locator("#chat-onset")
    assert btn.is_visible()
    m = re.search(r"跳到 ([0-9.]+) s", btn.inner_text())
    assert m, btn.inner_text()
    shown = float(m.group(1))
    det = [t for c in _history(client) for t in c["turns"] if t["engine"] == "baseline" and t["kind"] == "detect"][0]
    onset = det["verdict"]["onset_s"]
    assert onset is not None and abs(onset - shown) < 0.06
    assert abs(onset - app.clip_info["onset_s"]) < 1.5  # the detector found the pedestrian near the real onset
    assert page.locator("#chat-track").is_visible()  # the per-frame score track

    page.wait_for_function("() => { const v = document.querySelector('#chat-player video'); return v && v.readyState >= 1; }",
                           timeout=60_000)
    btn.click()
    page.wait_for_function("(t) => Math.abs(document.querySelector('#chat-player video').currentTime - t) < 0.1",
                           arg=onset, timeout=30_000)


def test_a_video_opened_in_the_library_tab_is_picked_in_the_chat_tab(page, app):
    page.goto(app.url + "/?__theme=light")
    page.wait_for_selector("#lib-gallery")
    page.wait_for_function("() => document.querySelector('#lib-gallery').innerText.includes('synth_')",
                           timeout=120_000)
    page.locator("#lib-gallery button, #lib-gallery .thumbnail-item").filter(has_text=CLIP).first.click()
    page.wait_for_function("() => document.querySelector('#lib-meta').innerText.includes('synth_')")
    page.get_by_role("tab", name="对话检测").click()
    page.wait_for_function("(v) => document.querySelector('#chat-video input').value === v", arg=CLIP)
    page.wait_for_function("() => { const v = document.querySelector('#chat-player video'); return v && v.src; }",
                           timeout=120_000)
