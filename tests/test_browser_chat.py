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
HUB_REPO = "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"
STOPPED = "stopped by the user before the answer was complete"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A loopback stand-in for the model hub serving the tiny Qwen2.5-VL as the catalogue's smallest model."""
    from fake_hub import FakeHub

    model = tiny_models.build("qwen2_5_vl", tmp_path_factory.mktemp("hubmodel"))
    files = {str(p.relative_to(model)): p.read_bytes() for p in sorted(model.rglob("*")) if p.is_file()}
    # slow enough (≈ 6 s) to watch the progress bar, fast enough for CI
    with FakeHub({HUB_REPO: files}, chunk=8192, chunk_delay_s=0.06) as running:
        running.files = files
        yield running


@pytest.fixture(scope="module")
def app(tmp_path_factory, hub):
    from engines.synth import render_clip

    work = tmp_path_factory.mktemp("chatapp")
    model = tiny_models.build("qwen2_5_vl", work / "models")
    # One generated positive clip in the demo folder (the same generator and settings as the demo set);
    # a library that already holds a video is not filled with the whole demo set, which keeps start-up short.
    info = render_clip(work / "library" / "demo" / CLIP, "emerge_pedestrian", seed=0, duration_s=5.0, onset_s=2.0)
    env = {"GHOSTPROBE_HF_MODEL": str(model), "GHOSTPROBE_ALLOW_DOWNLOAD": "0",
           # the model catalogue may reach the stand-in hub, and only when a person presses 下载
           "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0",
           "HF_HOME": str(work / "hf-home")}
    for k in ("GHOSTPROBE_OPENAI_BASE_URL", "GHOSTPROBE_OPENAI_API_KEY", "OPENAI_API_KEY", "GHOSTPROBE_ENGINE",
              "GHOSTPROBE_MODELS"):
        env[k] = ""
    with RunningApp(work, env=env) as running:
        running.model = str(model)
        running.clip_info = info
        running.hub_requests_at_start = list(hub.requests)
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
    # nothing about the library stays in the browser: Gradio's run history is off for the whole app
    keys = page.evaluate("() => Object.keys(localStorage)")
    assert not [k for k in keys if "run-history" in k or "runs" in k.lower()], keys

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


# -- chat out of the box, the model catalogue, English mode, layout ----------------------------------------

def _disabled(page, elem: str) -> bool:
    return page.evaluate(f"() => {{ const e = document.querySelector('#{elem} textarea, #{elem} input, "
                         f"button#{elem}'); return !!(e && e.disabled); }}")


def _cannot(page) -> str:
    return page.evaluate("() => { const e = document.querySelector('#chat-cannot');"
                         " return e && e.offsetParent !== null ? e.innerText.trim() : ''; }")


def _need_video(page) -> str:
    return page.evaluate("() => { const e = document.querySelector('#chat-need-video');"
                         " return e && e.offsetParent !== null ? e.innerText.trim() : ''; }")


def test_nothing_can_be_asked_or_detected_until_a_video_is_picked(page, app):
    from media import write_mp4v

    _open(page, app)
    # a fresh page: the default engine, no video; the question box, Send and Detect are off, one sentence says why
    # (wait out the tab's refresh: while it runs, Gradio's timer shows over the line)
    # (Gradio's own status line can flash over any component while the page's first events are queued on a
    # busy server: wait until it is gone, then read the one sentence)
    page.wait_for_function("() => { const e = document.querySelector('#chat-need-video');"
                           " return e && e.innerText.trim().startsWith('⚠️'); }", timeout=60_000)
    assert page.evaluate("() => document.querySelector('#chat-engine input').value") == "baseline"
    assert page.evaluate("() => document.querySelector('#chat-video input').value") == ""
    page.wait_for_function("() => { const e = document.querySelector('#chat-need-video'); if (!e) return false;"
                           " const t = e.innerText.trim(); return t.startsWith('⚠️') && !t.includes('\\n'); }",
                           timeout=60_000)
    said = _need_video(page)
    assert "先在左侧选择一个视频" in said, said
    assert _disabled(page, "chat-input") and page.locator("#chat-send").is_disabled()
    assert page.locator("#chat-detect").is_disabled()
    # picked: the baseline detects (it still cannot chat); the sentence goes
    _pick(page, "chat-video", CLIP)
    page.wait_for_function("() => !document.querySelector('#chat-detect').disabled")
    page.wait_for_function("() => { const e = document.querySelector('#chat-need-video');"
                           " return !e || e.offsetParent === null; }")
    assert _disabled(page, "chat-input") and page.locator("#chat-send").is_disabled()
    assert "不能自由对话" in _cannot(page)
    # an engine that chats, with a video picked: questions too
    _pick(page, "chat-engine", "transformers")
    page.wait_for_function("() => !document.querySelector('#chat-input textarea').disabled")
    assert page.locator("#chat-send").is_enabled() and page.locator("#chat-detect").is_enabled()
    # the picked video leaves the library (its file is gone, then 刷新): everything is off again, the sentence back
    gone = write_mp4v(app.library / "chat_gone_clip.mp4")
    page.locator("#chat-refresh").click()
    page.locator("#chat-video input").click()
    page.get_by_role("option", name="chat_gone_clip.mp4", exact=True).click()
    page.wait_for_function("() => document.querySelector('#chat-video input').value === 'chat_gone_clip.mp4'")
    page.wait_for_function("() => !document.querySelector('#chat-input textarea').disabled")
    gone.unlink()
    page.locator("#chat-refresh").click()
    page.wait_for_function("() => document.querySelector('#chat-video input').value === ''")
    page.wait_for_function("() => document.querySelector('#chat-input textarea').disabled")
    page.wait_for_function("() => { const e = document.querySelector('#chat-need-video');"
                           " return e && e.offsetParent !== null && e.innerText.includes('先在左侧选择一个视频'); }")
    assert page.locator("#chat-send").is_disabled() and page.locator("#chat-detect").is_disabled()


def test_an_engine_that_cannot_chat_disables_the_question_box_with_one_sentence(page, app):
    _open(page, app)
    _pick(page, "chat-engine", "baseline")
    page.wait_for_function("() => document.querySelector('#chat-engine-info').innerText.includes('baseline')")
    _pick(page, "chat-video", CLIP)
    page.wait_for_function("() => !document.querySelector('#chat-detect').disabled")
    page.wait_for_function("() => { const e = document.querySelector('#chat-cannot');"
                           " return e && e.offsetParent !== null && e.innerText.includes('不能自由对话'); }")
    said = _cannot(page)
    assert len(said.splitlines()) == 1 and "检测鬼探头" in said and "模型目录" in said, said
    assert _disabled(page, "chat-input") and page.locator("#chat-send").is_disabled()
    assert page.locator("#chat-detect").is_enabled()  # the detector still detects
    _pick(page, "chat-engine", "transformers")
    page.wait_for_function("() => { const e = document.querySelector('#chat-cannot'); return !e || e.offsetParent === null; }")
    page.wait_for_function("() => !document.querySelector('#chat-input textarea').disabled")
    assert page.locator("#chat-send").is_enabled()


def test_model_catalogue_pulls_on_request_with_progress_then_chats(page, app, hub, client):
    from webapp import models as M

    assert app.hub_requests_at_start == []  # nothing reaches the hub at start-up
    _open(page, app)
    assert hub.requests == []  # nor when the page and the Chat tab open
    _pick(page, "chat-engine", "baseline")
    page.locator("#chat-models").get_by_text("模型目录").first.click()
    page.locator("#chat-models-pick input").click()
    page.get_by_role("option").filter(has_text="smolvlm2-256m").first.click()
    page.wait_for_function("() => document.querySelector('#chat-models-info').innerText.includes('" + HUB_REPO + "')")
    assert "估计" in page.locator("#chat-models-info").inner_text()  # the size before asking is an estimate
    assert page.locator("#chat-models-use").is_disabled()
    page.evaluate("""() => { window.__progress = [];
      const look = () => { const t = document.querySelector('#chat-models').innerText;
        const m = t.match(/下载 smolvlm2-256m：[^\\n]*/); if (m) window.__progress.push(m[0]); };
      new MutationObserver(look).observe(document.querySelector('#chat-models'),
        {subtree: true, childList: true, characterData: true}); }""")
    page.locator("#chat-models-pull").click()
    total = sum(len(b) for b in hub.files.values())
    page.wait_for_function("() => document.querySelector('#chat-models-status').innerText.includes('已下载 smolvlm2-256m')",
                           timeout=180_000)
    seen = page.evaluate("window.__progress")
    assert seen, "no progress was shown while downloading"
    assert any(M.human_bytes(total) in s for s in seen), seen  # the listed total, shown before it finished
    assert any("/resolve/" in p for _, p in hub.requests)
    # the pulled model is selected as the transformers engine and can take questions
    page.wait_for_function("(m) => document.querySelector('#chat-model textarea, #chat-model input').value.endsWith(m)",
                           arg="/models/smolvlm2-256m")
    page.wait_for_function("() => document.querySelector('#chat-engine input').value === 'transformers'")
    assert page.locator("#chat-models-use").is_enabled()
    _set_number(page, "chat-frames", 2)
    _set_number(page, "chat-max-new", 32)
    _pick(page, "chat-video", CLIP)
    page.wait_for_function("() => { const v = document.querySelector('#chat-player video'); return v && v.src; }",
                           timeout=120_000)
    page.wait_for_function("() => !document.querySelector('#chat-input textarea').disabled")
    _ask(page, "用拉取的模型回答")
    page.wait_for_function("() => document.querySelector('#chat-status').innerText.includes('第 1 轮')",
                           timeout=180_000)
    [t] = [t for c in _history(client) for t in c["turns"] if t["question"] == "用拉取的模型回答"]
    assert t["engine"] == "transformers" and t["model"].endswith("/models/smolvlm2-256m") and t["error"] is None


def test_english_mode_chat_tab_and_layout(page_en, app):
    from engines.registry import all_engines

    page = page_en
    page.goto(app.url + "/?__theme=light")
    page.get_by_role("tab", name="Chat & Detect").click()
    page.wait_for_function("() => { const e = document.querySelector('#chat-engine-info');"
                           " return e && e.innerText.trim().length > 0; }", timeout=120_000)
    _pick(page, "chat-engine", "baseline")
    page.wait_for_function("() => { const e = document.querySelector('#chat-cannot');"
                           " return e && e.offsetParent !== null && e.innerText.includes('cannot chat'); }")
    assert "Model catalogue" in _cannot(page) and not re.search(r"[\u4e00-\u9fff]", _cannot(page))
    need = _need_video(page)
    assert need.startswith("⚠️ Pick a video on the left first") and not re.search(r"[\u4e00-\u9fff]", need), need
    assert page.locator("#chat-detect").is_disabled()
    ph = page.locator("#chat-input textarea").get_attribute("placeholder") or ""
    assert ph.startswith("Ask a question"), ph
    card = page.locator("#verdict-card").inner_text()
    assert "Not run yet" in card and not re.search(r"[\u4e00-\u9fff]", card)
    # the Refresh button keeps its label inside itself and its row
    fits = page.evaluate("""() => { const b = document.querySelector('#chat-refresh');
      const row = b.parentElement.getBoundingClientRect(), r = b.getBoundingClientRect();
      return b.scrollWidth <= b.clientWidth + 1 && r.right <= row.right + 1 && r.left >= row.left - 1; }""")
    assert fits
    if "baseline" not in all_engines():
        pytest.skip("engine 'baseline' is not registered")
    _pick(page, "chat-video", CLIP)
    page.wait_for_function("() => { const v = document.querySelector('#chat-player video'); return v && v.src; }",
                           timeout=120_000)
    page.locator("#chat-detect").click()
    page.wait_for_function("() => document.querySelector('#chat-status').innerText.includes('Detection done')",
                           timeout=180_000)
    card = page.locator("#verdict-card").inner_text()
    assert "Ghost probing:" in card and page.locator("#verdict-card .verdict-answer").inner_text().strip() == "yes"
    for field in ("Confidence", "Danger level", "Object", "Onset", "Reason"):
        assert field in card
    danger = page.locator('#verdict-card [data-field="chat_f_danger"]').inner_text().strip()
    obj = page.locator('#verdict-card [data-field="chat_f_object"]').inner_text().strip()
    assert danger in ("high", "medium", "low", "—") and not re.search(r"[\u4e00-\u9fff]", obj), (danger, obj)
    assert "engine baseline" in page.locator("#chat-call").inner_text()
    # the raw output box keeps a fixed height and scrolls, however long the answer
    page.locator("#verdict-raw").get_by_text("Raw model output").click()
    page.wait_for_function("() => { const e = document.querySelector('#chat-raw'); return e && e.offsetParent !== null"
                           " && e.innerText.trim().length > 0; }")
    height = page.evaluate("() => document.querySelector('#chat-raw').getBoundingClientRect().height")
    assert 40 < height <= 420, height
