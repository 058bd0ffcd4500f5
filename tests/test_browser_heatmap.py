"""The 异常热力图 (Heatmap) tab in headless Chromium against the real app on a fresh database.

The weights-free motion-map engine runs for real on a generated clip; the heatmap video must play in
the browser (readyState >= 2), the timeline must render and clicking it must seek the player; the
second run reuses the stored result; the store holds the per-frame and per-box rows afterwards. An
English browser (Accept-Language en) then gets every run-time text in English: the verdict line, the
timeline's trace names, axis titles and notes, the status, the estimate, the engine panel, the gallery
captions and the need-video sentence."""

from __future__ import annotations

import re

import pytest

from tests.appserver import RunningApp

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CLIP = "synth_emerge_pedestrian_s0.mp4"
CJK = re.compile(r"[\u4e00-\u9fff]")
# the timeline's words: trace names, axis titles, annotations and the title
FIGURE_TEXT_JS = """() => { const gd = document.querySelector('#vad-timeline .js-plotly-plot'); const L = gd.layout;
  return {traces: gd.data.map((d) => d.name || ''), x: (L.xaxis.title || {}).text || '',
          y: (L.yaxis.title || {}).text || '', notes: (L.annotations || []).map((a) => a.text || ''),
          title: ((L.title || {}).text) || ''}; }"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from engines.synth import render_clip

    work = tmp_path_factory.mktemp("heatmapapp")
    render_clip(work / "library" / "demo" / CLIP, "emerge_pedestrian", seed=0, duration_s=4.0, onset_s=2.0)
    env = {"GHOSTPROBE_ENGINE": "", "GHOSTPROBE_OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""}
    with RunningApp(work, env=env) as running:
        yield running


def _pick(page, elem: str, option: str) -> None:
    page.locator(f"#{elem} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def _open(page, app, tab: str = "异常热力图", title: str = "运动异常图") -> None:
    page.goto(app.url + "/?__theme=light")
    page.get_by_role("tab", name=tab).click()
    page.wait_for_function("(t) => { const e = document.querySelector('#vad-engine-info');"
                           " return !!e && e.innerText.includes(t); }", arg=title, timeout=120_000)


def test_motion_heatmap_plays_timeline_seeks_and_is_reused(page, app):
    _open(page, app)
    # no video yet: Run is off and one sentence says why
    assert page.locator("#vad-run").is_disabled()
    assert "先在上方选择一个视频" in page.locator("#vad-need-video").inner_text()
    _pick(page, "vad-video", CLIP)
    page.wait_for_function("() => !document.querySelector('#vad-run').disabled")
    page.wait_for_function("() => { const e = document.querySelector('#vad-need-video');"
                           " return !e || e.offsetParent === null; }")
    page.wait_for_function("() => document.querySelector('#vad-estimate').innerText.includes('预计耗时')",
                           timeout=60_000)
    page.locator("#vad-run").click()
    page.wait_for_function("() => { const v = document.querySelector('#vad-player video');"
                           " return v && v.src && v.readyState >= 2; }", timeout=180_000)
    status = page.locator("#vad-status").inner_text()
    assert "完成" in status and "⚠️" not in status, status
    verdict = page.locator("#vad-verdict").inner_text()
    assert "置信度" in verdict and "vad-peak-in-ego-path-v1" in verdict
    assert ("疑似鬼探头" in verdict or "未发现鬼探头" in verdict) and "解码" in verdict and "检测" in verdict, verdict
    # the timeline: a Plotly graph with the score trace
    page.wait_for_function("() => document.querySelectorAll('#vad-timeline .js-plotly-plot .scatterlayer .trace')"
                           ".length >= 1", timeout=60_000)
    fig = page.evaluate(FIGURE_TEXT_JS)
    assert fig["x"] == "时间 (s)" and fig["y"] == "异常得分" and fig["traces"][0] == "异常得分 (motion)", fig
    assert any(n.startswith("阈值 ") for n in fig["notes"]), fig
    n_points = page.evaluate("() => document.querySelector('#vad-timeline .js-plotly-plot').data[0].x.length")
    assert n_points >= 20  # 4 s at 10 fps
    # the gallery of the most anomalous frames
    assert page.locator("#vad-gallery img").count() >= 1
    assert " · 得分 " in page.locator("#vad-gallery").inner_text()
    # clicking the timeline seeks the player to the clicked time
    page.wait_for_function("() => document.querySelector('#vad-timeline .js-plotly-plot').__vadSeek === true",
                           timeout=30_000)
    drag = page.locator("#vad-timeline .nsewdrag").first
    box = drag.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.5)
    page.mouse.click(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.5)
    page.wait_for_function("() => window.__vadSeek !== undefined", timeout=10_000)
    seek = page.evaluate("window.__vadSeek")
    assert 1.5 < seek < 4.0
    page.wait_for_function("(t) => Math.abs(document.querySelector('#vad-player video').currentTime - t) < 0.2",
                           arg=seek, timeout=10_000)
    # the same video, engine and settings again: reused, not recomputed
    page.locator("#vad-run").click()
    page.wait_for_function("() => document.querySelector('#vad-status').innerText.includes('复用')", timeout=60_000)
    page.wait_for_function("() => document.querySelector('#vad-verdict').innerText.includes('复用已保存结果')",
                           timeout=60_000)


def test_english_browser_gets_every_run_time_text_in_english(page_en, app):
    # after the Chinese run above: the same video, engine and settings, so this run reuses its stored result
    page = page_en
    _open(page, app, tab="Heatmap", title="Motion anomaly map")
    info = page.locator("#vad-engine-info").inner_text()
    assert "ready" in info and not CJK.search(info), info
    need = page.locator("#vad-need-video").inner_text()
    assert need.startswith("⚠️ Pick a video above first") and not CJK.search(need), need
    assert page.locator("#vad-run").is_disabled()
    _pick(page, "vad-video", CLIP)
    page.wait_for_function("() => !document.querySelector('#vad-run').disabled")
    page.wait_for_function("() => document.querySelector('#vad-estimate').innerText.includes('reuses it')",
                           timeout=60_000)
    assert not CJK.search(page.locator("#vad-estimate").inner_text())
    page.locator("#vad-run").click()
    page.wait_for_function("() => document.querySelector('#vad-status').innerText.includes('Reused the stored result')",
                           timeout=120_000)
    page.wait_for_function("() => document.querySelector('#vad-verdict').innerText.includes('(stored result reused)')",
                           timeout=60_000)
    verdict = page.locator("#vad-verdict").inner_text()
    assert re.search(r"(Suspected ghost probing|No ghost probing found) · confidence \d\.\d\d", verdict), verdict
    assert "threshold" in verdict and "vad-peak-in-ego-path-v1" in verdict and "response #" in verdict, verdict
    assert "(stored result reused)" in verdict and not CJK.search(verdict), verdict
    assert not CJK.search(page.locator("#vad-status").inner_text())
    page.wait_for_function("() => document.querySelectorAll('#vad-timeline .js-plotly-plot .scatterlayer .trace')"
                           ".length >= 1", timeout=60_000)
    fig = page.evaluate(FIGURE_TEXT_JS)
    assert fig["x"] == "Time (s)" and fig["y"] == "Anomaly score" and fig["traces"][0] == "Anomaly score (motion)", fig
    assert any(n.startswith("threshold ") for n in fig["notes"]), fig
    assert not CJK.search(" ".join([*fig["traces"], fig["x"], fig["y"], *fig["notes"], fig["title"]])), fig
    assert page.locator("#vad-gallery img").count() >= 1
    gallery = page.locator("#vad-gallery").inner_text()  # the captions: "<t> s · score <s> · <n> box(es)"
    assert re.search(r"\d\.\d\d s · score \d", gallery) and not CJK.search(gallery), gallery


def test_store_holds_frames_and_boxes_after_the_app_stops(app):
    # runs after the browser test in this module: stop the app (DuckDB allows one process), then read
    from reports.store import Store

    app.__exit__()
    s = Store(app.data / "ghostprobe.duckdb")
    try:
        runs = s.query("SELECT response_id, engine, video_id FROM vad_runs")
        assert len(runs) == 1 and runs[0]["engine"] == "motion" and runs[0]["video_id"] == CLIP
        rid = runs[0]["response_id"]
        assert s.scalar("SELECT count(*) FROM vad_frames WHERE response_id = ?", [rid]) >= 20
        assert s.scalar("SELECT count(*) FROM vad_boxes WHERE response_id = ?", [rid]) >= 1
        assert s.scalar("SELECT count(*) FROM responses WHERE id = ? AND engine = 'motion'", [rid]) == 1
    finally:
        s.close()
