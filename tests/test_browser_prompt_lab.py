"""The 提示词实验室 (Prompt Lab) tab in headless Chromium against the real app and the real baseline engine.

One app per module (the demo clips are rendered into its library with label set "demo"); the tests
run in order and build on each other: save a new prompt version, run it, read the matrix, drill down.
"""

from __future__ import annotations

import csv
import re

import pytest

from tests.appserver import RunningApp

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MARKER = "浏览器测试：特别注意从停靠车辆之间走出的儿童。"
RUN_ID = re.compile(r"r\d{8}-\d{6}-[0-9a-f]{4}")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    work = tmp_path_factory.mktemp("lab")
    with RunningApp(work) as running:
        yield running


@pytest.fixture(scope="module")
def demo_labels(app) -> list[dict[str, str]]:
    return list(csv.DictReader(open(app.library / "demo" / "labels.csv", encoding="utf-8")))


def _open_lab(page, app):
    page.goto(app.url + "/?__theme=light")
    page.get_by_role("tab", name="提示词实验室").click()
    page.wait_for_selector("#lab-matrix")
    page.wait_for_function("() => document.querySelector('#lab-system textarea')?.value.length > 20")
    # the page-load handler has filled the tab (it rewrites the editor, so typing before it would be lost)
    page.wait_for_function("() => /新版本保存到|New versions are saved/.test("
                           "document.querySelector('#lab-save-where')?.innerText || '')", timeout=60_000)


def _md(page, elem_id: str) -> str:
    """The rendered text of a Markdown component (without the loading overlay)."""
    return page.locator(f"#{elem_id} [data-testid='markdown']").inner_text().strip()


def _wait_status(page, elem_id: str, timeout: int = 60_000, sign: str = "✅|⚠️") -> str:
    page.wait_for_function(
        f"() => /{sign}/.test(document.querySelector(\"#{elem_id} [data-testid='markdown']\")?.innerText || '')",
        timeout=timeout)
    return _md(page, elem_id)


def _prompt_ref(page) -> str:
    return page.locator("#lab-prompt input").input_value().split(" · ")[0].strip()


def _wait_hint(page, elem_id: str, text: str, timeout: int = 60_000) -> str:
    """Wait for an empty-state sentence (a regular expression) in a Markdown component and return its text."""
    page.wait_for_function(
        f"() => new RegExp({text!r}).test(document.querySelector(\"#{elem_id} [data-testid='markdown']\")?.innerText || '')",
        timeout=timeout)
    return _md(page, elem_id)


def _hint_text(page, elem_id: str) -> str:
    loc = page.locator(f"#{elem_id} [data-testid='markdown']")
    return loc.inner_text().strip() if loc.count() else ""


def _enabled(page, *ids: str, on: bool = True, timeout: int = 30_000) -> None:
    """Wait until every button is on (or off)."""
    cond = " && ".join(f"document.querySelector('#{b}')?.disabled === {'false' if on else 'true'}" for b in ids)
    page.wait_for_function(f"() => {cond}", timeout=timeout)


GATED = ("lab-resume", "lab-retry", "lab-manage-rename", "lab-manage-hide", "lab-manage-unhide", "lab-manage-delete",
         "lab-drill-show", "lab-review-save", "lab-fix-save", "lab-cmp-btn")


def _open_all(page):
    for box, title in (("lab-manage", "管理运行"), ("lab-compare-box", "比较两次运行")):
        page.locator(f"#{box}").get_by_text(title).first.click()
    page.wait_for_selector("#lab-manage-hide", state="visible")
    page.wait_for_selector("#lab-cmp-btn", state="visible")


def test_empty_states_on_a_fresh_database(page, browser, app):
    # first in this module: the database holds no run yet
    assert _runs_via_api(app) == []
    _open_lab(page, app)
    _open_all(page)
    assert "还没有可以继续的运行" in _wait_hint(page, "lab-resume-hint", "还没有可以继续的运行")
    assert "还没有运行" in _wait_hint(page, "lab-manage-hint", "还没有运行")
    assert "还没有可查看的预测" in _wait_hint(page, "lab-drill-hint", "还没有可查看的预测")
    assert "不到两次" in _wait_hint(page, "lab-cmp-hint", "不到两次")
    for b in GATED:
        assert page.locator(f"#{b}").is_disabled(), b
    # the matrix says there is no run before the table of videos and labels
    empty = page.locator("#lab-matrix-empty").inner_text()
    assert "该标签集还没有运行" in empty, empty
    # ticking the confirmation deletes nothing when no run is picked: Delete stays off
    page.locator("#lab-manage-confirm input").check()
    page.wait_for_timeout(800)
    assert page.locator("#lab-manage-delete").is_disabled()
    # Run needs nothing more here: the demo set, the baseline engine and a prompt are picked
    assert page.locator("#lab-run").is_enabled() and _hint_text(page, "lab-run-hint") == ""
    assert page.locator("#lab-cancel").is_enabled()  # Cancel answers for any browser's run

    ctx = browser.new_context(locale="en-US", viewport={"width": 1400, "height": 1000})
    en = ctx.new_page()
    en.set_default_timeout(60_000)
    try:
        en.goto(app.url + "/?__theme=light")
        en.get_by_role("tab", name="Prompt Lab").click()
        en.wait_for_selector("#lab-matrix")
        assert "No run to continue yet" in _wait_hint(en, "lab-resume-hint", "No run to continue yet")
        for box, title in (("lab-manage", "Manage runs"), ("lab-compare-box", "Compare two runs")):
            en.locator(f"#{box}").get_by_text(title).first.click()
        en.wait_for_selector("#lab-cmp-btn", state="visible")
        assert "No runs yet" in _wait_hint(en, "lab-manage-hint", "No runs yet")
        assert "click a cell" in _wait_hint(en, "lab-drill-hint", "No predictions")
        assert "has no runs yet" in en.locator("#lab-matrix-empty").inner_text()
        assert "fewer than two runs" in _wait_hint(en, "lab-cmp-hint", "fewer than two")
        for b in GATED:
            assert en.locator(f"#{b}").is_disabled(), b
    finally:
        ctx.close()


def test_edit_and_save_new_version(page, app):
    _open_lab(page, app)
    base = _prompt_ref(page)
    pid, ver = base.split("@")
    system = page.locator("#lab-system textarea")
    system.fill(system.input_value() + "\n" + MARKER)
    page.locator("#lab-notes textarea").fill("浏览器测试保存的版本")
    page.click("#lab-save")
    status = _wait_status(page, "lab-save-status")
    new_ref = f"{pid}@{int(ver) + 1}"
    assert status.startswith("✅") and new_ref in status, status
    page.wait_for_function(f"() => document.querySelector('#lab-prompt input').value.startsWith('{new_ref}')")
    # the diff against the parent shows the added line
    page.wait_for_function("() => document.querySelector('#lab-diff').innerText.includes('特别注意从停靠车辆')")
    page.wait_for_function(f"() => document.querySelector('#lab-diff').innerText.includes('parent: {base}')")
    added = [ln for ln in page.locator("#lab-diff-body").inner_text().splitlines() if MARKER in ln]
    assert added and all(ln.lstrip().startswith("+") for ln in added), added
    assert f"parent: {base}" in page.locator("#lab-diff-body").inner_text()
    saved = app.data / "prompts" / f"{pid}.v{int(ver) + 1}.yaml"
    assert saved.exists() and MARKER in saved.read_text(encoding="utf-8")

    # saving the same content again is refused in one sentence, nothing written
    page.click("#lab-save")
    status = _wait_status(page, "lab-save-status", sign="⚠️")
    assert status.startswith("⚠️") and "内容相同" in status and "asks the same" not in status, status
    assert len(status.splitlines()) == 1
    assert not (app.data / "prompts" / f"{pid}.v{int(ver) + 2}.yaml").exists()


def _runs_via_api(app) -> list[dict]:
    from gradio_client import Client

    return Client(app.url, verbose=False).predict(run_ids=[], api_name="/report_json")["runs"]


def test_cancelled_run_resumes_from_the_ui(page, app, demo_labels):
    # first of the runs in this module: later runs are answered from the cache, too fast to cancel
    _open_lab(page, app)
    page.locator("#lab-run-name input, #lab-run-name textarea").first.fill("取消后继续")
    page.click("#lab-run")
    page.wait_for_function("() => /synth_/.test(document.querySelector('#lab-run-status').innerText)", timeout=180_000)
    page.click("#lab-cancel")
    status = _wait_status(page, "lab-run-status", timeout=180_000, sign="运行已取消")
    assert "未开始" in status and "继续运行" in status and "ghostprobe eval --resume" not in status, status
    run = next(r for r in _runs_via_api(app) if r.get("name") == "取消后继续")
    assert run["status"] == "cancelled"
    # nothing picked yet: Resume and Retry stay off, with the sentence saying to pick a run
    assert "选择一次运行" in _wait_hint(page, "lab-resume-hint", "选择一次运行")
    assert page.locator("#lab-resume").is_disabled() and page.locator("#lab-retry").is_disabled()
    page.locator("#lab-resume-run input").click()
    page.locator("[role='option']").filter(has_text=run["run_id"]).first.click()
    page.wait_for_function("() => !document.querySelector('#lab-resume').disabled")
    assert _hint_text(page, "lab-resume-hint") == ""
    # Retry errors only when the run has errored videos
    assert page.locator("#lab-retry").is_enabled() == (int(run["errored"]) > 0), run
    page.click("#lab-resume")
    status = _wait_status(page, "lab-run-status", timeout=300_000, sign="运行完成")
    assert run["run_id"] in status and f"覆盖率 {len(demo_labels)}/{len(demo_labels)}" in status, status
    again = next(r for r in _runs_via_api(app) if r["run_id"] == run["run_id"])
    assert again["status"] == "done" and again["n"] == len(demo_labels)
    # the finished run has nothing left to resume: Resume goes off (and the run leaves the picker unless
    # errored videos are left to retry)
    page.wait_for_function("() => !document.querySelector('#lab-run').disabled", timeout=60_000)
    if int(again["errored"]):
        page.wait_for_function("() => !document.querySelector('#lab-retry').disabled", timeout=60_000)
    else:
        page.wait_for_function("() => !document.querySelector('#lab-resume-run input').value", timeout=60_000)
        assert page.locator("#lab-retry").is_disabled()
    assert page.locator("#lab-resume").is_disabled()


def test_run_baseline_on_demo_fills_matrix(page, app, demo_labels):
    _open_lab(page, app)
    before = len(_runs_via_api(app))
    assert re.search(r"@\d+", _prompt_ref(page))
    assert page.locator("#lab-engine input").input_value().startswith("baseline")
    assert page.locator("#lab-label-set input").input_value().startswith("demo")
    page.locator("#lab-run-name input, #lab-run-name textarea").first.fill("浏览器运行-1")
    page.dblclick("#lab-run")  # a double click makes one run, not two
    page.wait_for_function("() => document.querySelector('#lab-run').disabled", timeout=10_000)
    assert page.locator("#lab-resume").is_disabled() and page.locator("#lab-retry").is_disabled()
    # progress is drawn in the Run box, never over the runs dropdown or the matrix
    page.wait_for_function("() => /synth_|准备中|视频/.test(document.querySelector('#lab-run-status').innerText)",
                           timeout=120_000)
    # The run's own progress text never shows there; Gradio's generic "processing" line may flash over a component
    # while a quick event is queued on a busy server, but the run's progress would stay for the whole run.
    progress = re.compile(r"准备中|运行 r\d{8}|synth_\S+：")
    flashes = {"#lab-matrix": 0, "#lab-runs": 0}
    for _ in range(4):
        for sel in flashes:
            text = page.locator(sel).inner_text()
            assert not progress.search(text), text
            flashes[sel] += "processing" in text
        page.wait_for_timeout(700)
    assert all(n < 4 for n in flashes.values()), flashes
    status = _wait_status(page, "lab-run-status", timeout=300_000)
    assert status.startswith("✅"), status
    run_id = RUN_ID.search(status).group(0)
    assert f"{len(demo_labels)} 个视频" in status and f"覆盖率 {len(demo_labels)}/{len(demo_labels)} 已评分" in status
    page.wait_for_function("() => !document.querySelector('#lab-run').disabled")
    runs = _runs_via_api(app)
    assert len(runs) == before + 1, [r["run_id"] for r in runs]
    assert next(r for r in runs if r["run_id"] == run_id)["name"] == "浏览器运行-1"

    page.wait_for_function(f"() => document.querySelector('#lab-matrix').innerText.includes('{run_id}')")
    rows = page.locator("#lab-matrix table.lab-matrix tbody tr")
    assert rows.count() == len(demo_labels)
    shown = {rows.nth(i).get_attribute("data-video") for i in range(rows.count())}
    assert shown == {r["video_id"] for r in demo_labels}
    cells = page.locator(f"#lab-matrix td[data-run='{run_id}']")
    assert cells.count() == len(demo_labels)
    for i in range(cells.count()):
        cls = cells.nth(i).get_attribute("data-status")
        assert cls in ("right", "wrong", "unparsed", "error"), cls
        bg = cells.nth(i).evaluate("el => getComputedStyle(el).backgroundColor")
        assert bg not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)"), bg
    # the label column, the run's coverage and its accuracy with its interval and n
    labels = page.locator("#lab-matrix td.lbl").all_inner_texts()
    assert len(labels) == len(demo_labels) and any(s.startswith("鬼探头") for s in labels)
    head = page.locator(f"#lab-matrix th:has-text('{run_id}')")
    assert head.get_attribute("data-coverage") == f"{len(demo_labels)}/{len(demo_labels)}"
    foot = page.locator("#lab-matrix tfoot").inner_text()
    assert f"n={len(demo_labels)}" in foot and "%" in foot and f"覆盖率 {len(demo_labels)}/{len(demo_labels)}" in foot


def test_drill_down_review_and_label_correction(page, app, demo_labels):
    _open_lab(page, app)
    page.wait_for_selector("#lab-matrix td[data-run]")
    # runs exist but no cell is picked: 查看, the review and the correction are off, one sentence says why
    assert "点击矩阵中的单元格" in _wait_hint(page, "lab-drill-hint", "点击矩阵中的单元格")
    _enabled(page, "lab-drill-show", "lab-review-save", "lab-fix-save", on=False)
    cell = page.locator("#lab-matrix td[data-run]").first
    video, run_id = cell.get_attribute("data-video"), cell.get_attribute("data-run")
    cell.click()
    page.wait_for_function(f"() => document.querySelector('#lab-drill-verdict').innerText.includes('{run_id}')")
    _enabled(page, "lab-drill-show", "lab-fix-save")
    assert _hint_text(page, "lab-drill-hint") == ""
    verdict = _md(page, "lab-drill-verdict")
    assert "status" in verdict and "ghost_probing" in verdict
    assert "标签" in _md(page, "lab-drill-label") and "demo" in _md(page, "lab-drill-label")
    assert page.locator("#lab-drill-raw textarea").input_value() != ""
    page.wait_for_function("() => { const v = document.querySelector('#lab-drill-player video'); return v && v.src; }",
                           timeout=120_000)
    assert page.locator("#lab-drill-video-id input").input_value() == video

    # no mark is preselected (a preselected "agree" nudges reviewers): saving waits for one, and says so
    assert page.locator("#lab-review-mark input:checked").count() == 0
    assert "选择一个评审标记" in _wait_hint(page, "lab-review-hint", "选择一个评审标记")
    assert page.locator("#lab-review-save").is_disabled()
    page.locator("#lab-review-mark input[value=unsure]").check()
    _enabled(page, "lab-review-save")
    assert _hint_text(page, "lab-review-hint") == ""
    page.locator("#lab-review-comment textarea").fill("浏览器测试的评审")
    page.click("#lab-review-save")
    status = _wait_status(page, "lab-review-status", sign="✅")
    assert status.startswith("✅") and "不确定" in status
    page.wait_for_function("() => document.querySelector('#lab-reviews').innerText.includes('浏览器测试的评审')")
    _enabled(page, "lab-review-save", on=False)  # the mark is cleared after saving: the next review needs one

    page.locator("#lab-fix-kind input[value=none]").check()
    page.locator("#lab-fix-note textarea").fill("浏览器测试的修正")
    page.click("#lab-fix-save")
    status = _wait_status(page, "lab-fix-status")
    assert status.startswith("✅") and "demo+fix" in status and "保持不变" in status, status

    from gradio_client import Client

    client = Client(app.url, verbose=False)
    rows = client.predict(label_set="demo", label_filter="all", api_name="/library_videos")
    original = next(r for r in rows if r["video_id"] == video)["label"]
    assert original["ghost_probing"] == (next(r for r in demo_labels if r["video_id"] == video)["ghost_probing"] == "1")
    fixed = next(r for r in client.predict(label_set="demo+fix", label_filter="all", api_name="/library_videos")
                 if r["video_id"] == video)["label"]
    assert fixed["ghost_probing"] is False and fixed["source"] == "correction"


def test_compare_needs_two_different_runs(page, app):
    _open_lab(page, app)
    page.locator("#lab-compare-box").get_by_text("比较两次运行").first.click()
    assert "选择运行 A 和运行 B" in _wait_hint(page, "lab-cmp-hint", "选择运行 A 和运行 B")
    assert page.locator("#lab-cmp-btn").is_disabled()
    ids = [r["run_id"] for r in _runs_via_api(app) if r.get("label_set") == "demo"][:2]
    assert len(ids) == 2, ids
    for box, rid in (("lab-cmp-a", ids[0]), ("lab-cmp-b", ids[0])):
        page.locator(f"#{box} input").click()
        page.locator("[role='option']").filter(has_text=rid).first.click()
    page.wait_for_timeout(800)
    assert page.locator("#lab-cmp-btn").is_disabled()  # the same run twice is no comparison
    page.locator("#lab-cmp-b input").click()
    page.locator("[role='option']").filter(has_text=ids[1]).first.click()
    _enabled(page, "lab-cmp-btn")
    assert _hint_text(page, "lab-cmp-hint") == ""
    page.click("#lab-cmp-btn")
    page.wait_for_function("() => /McNemar/.test(document.querySelector('#lab-compare').innerText)", timeout=60_000)


def test_cancel_without_a_run_is_one_sentence(page, app):
    _open_lab(page, app)
    page.click("#lab-cancel")
    status = _wait_status(page, "lab-run-status")
    assert status.startswith("⚠️") and len(status.splitlines()) == 1


def test_drill_down_names_levels_and_objects_in_chinese(page, app, demo_labels):
    _open_lab(page, app)
    page.wait_for_selector("#lab-matrix td[data-run]")
    positive = next(r["video_id"] for r in demo_labels if r["ghost_probing"] == "1")
    page.locator(f"#lab-matrix td[data-run][data-video='{positive}']").first.click()
    page.wait_for_function("() => document.querySelector('#lab-drill-verdict').innerText.includes('危险等级')")
    verdict = _md(page, "lab-drill-verdict")
    for raw in ("medium", "high", "low", "pedestrian", "vehicle", "cyclist"):
        assert f"| {raw}" not in verdict and not re.search(rf"\b{raw}\b", verdict.split("理由")[0]), verdict


def test_manage_runs_rename_hide_unhide_delete(page, app):
    _open_lab(page, app)
    run_id = next(r["run_id"] for r in _runs_via_api(app) if r.get("name") == "浏览器运行-1")
    page.locator("#lab-manage").get_by_text("管理运行").first.click()
    # runs exist but none is picked: every button is off, with the sentence saying to pick one
    assert "选择要管理的运行" in _wait_hint(page, "lab-manage-hint", "选择要管理的运行")
    for b in ("lab-manage-rename", "lab-manage-hide", "lab-manage-unhide", "lab-manage-delete"):
        assert page.locator(f"#{b}").is_disabled(), b
    page.locator("#lab-manage-run input").click()
    page.locator("[role='option']").filter(has_text=run_id).first.click()
    # a shown run: rename and hide on, unhide off, delete off until the confirmation is ticked
    _enabled(page, "lab-manage-rename", "lab-manage-hide")
    _enabled(page, "lab-manage-unhide", "lab-manage-delete", on=False)
    assert "确认删除" in _wait_hint(page, "lab-manage-hint", "确认删除")
    page.locator("#lab-manage-name input, #lab-manage-name textarea").first.fill("改过的名字")
    page.click("#lab-manage-rename")
    assert "改过的名字" in _wait_status(page, "lab-manage-status", sign="✅")
    page.click("#lab-manage-hide")
    assert "已隐藏" in _wait_status(page, "lab-manage-status", sign="已隐藏")
    _enabled(page, "lab-manage-unhide", "lab-manage-rename")  # hidden: unhide on, hide off
    _enabled(page, "lab-manage-hide", on=False)
    page.locator("#lab-runs input").click()
    assert not page.locator("[role='option']").filter(has_text=run_id).count()
    page.keyboard.press("Escape")
    page.click("#lab-manage-unhide")
    assert "重新显示" in _wait_status(page, "lab-manage-status", sign="重新显示")
    _enabled(page, "lab-manage-hide")
    _enabled(page, "lab-manage-unhide", "lab-manage-delete", on=False)
    assert any(r["run_id"] == run_id for r in _runs_via_api(app))
    page.locator("#lab-manage-confirm input").check()
    _enabled(page, "lab-manage-delete")
    assert _hint_text(page, "lab-manage-hint") == ""
    page.click("#lab-manage-delete")
    assert "已删除" in _wait_status(page, "lab-manage-status", sign="已删除")
    assert not any(r["run_id"] == run_id for r in _runs_via_api(app))
    assert page.locator("#lab-manage-confirm input").is_checked() is False
    # nothing picked any more: back to every button off and the sentence
    _enabled(page, "lab-manage-rename", "lab-manage-hide", "lab-manage-unhide", "lab-manage-delete", on=False)
    assert "选择要管理的运行" in _wait_hint(page, "lab-manage-hint", "选择要管理的运行")
    assert not page.locator("#lab-manage-run input").input_value()


def test_lab_opens_on_the_label_set_used_last_and_speaks_english(browser, app, demo_labels):
    from gradio_client import Client

    # a second label set with two of the demo videos, imported through the Library tab, then run through the API
    import csv as _csv
    import tempfile
    from pathlib import Path

    tmp = Path(tempfile.mkdtemp())
    two = tmp / "two.csv"
    with open(two, "w", newline="", encoding="utf-8") as f:
        w = _csv.writer(f)
        w.writerow(["video_id", "ghost_probing"])
        for r in demo_labels[:2]:
            w.writerow([r["video_id"], r["ghost_probing"]])
    ctx = browser.new_context(locale="en-US", viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(app.url + "/?__theme=light")
        page.wait_for_selector("#lib-gallery")
        page.locator("#lib-import").get_by_text("Import labels").first.click()
        page.locator("#lib-label-file input[type=file]").set_input_files(str(two))
        page.locator("#lib-set-name input, #lib-set-name textarea").first.fill("lab-two")
        page.click("#lib-import-btn")
        page.wait_for_function("() => document.querySelector('#lib-import-status').innerText.includes('lab-two')")
        assert "Imported label set" in page.locator("#lib-import-status").inner_text()
        rid = Client(app.url, verbose=False).predict(label_set="lab-two", engine="baseline", prompt="", video_ids=[],
                                                     api_name="/run_eval_api")
        assert RUN_ID.match(rid)
        page.goto(app.url + "/?__theme=light")
        page.get_by_role("tab", name="Prompt Lab").click()
        page.wait_for_function("() => document.querySelector('#lab-label-set input')?.value.startsWith('lab-two')",
                               timeout=60_000)
        page.wait_for_function(f"() => document.querySelector('#lab-matrix').innerText.includes('{rid}')")
        matrix = page.locator("#lab-matrix").inner_text()
        assert "Label set lab-two: 2 videos × 1 runs" in matrix and "coverage 2/2" in matrix
        assert "right" in matrix and "unparsed (never counted as no)" in matrix and "正确" not in matrix
        assert "Run to continue" in page.locator("#lab-run-box").inner_text()
        assert "available" in page.locator("#lab-engine input").input_value()
        page.locator(f"#lab-matrix td[data-run='{rid}']").first.click()
        page.wait_for_function("() => document.querySelector('#lab-drill-verdict').innerText.includes('danger level')")
        verdict = page.locator("#lab-drill-verdict").inner_text()
        assert "Parsed verdict" in verdict and "危险等级" not in verdict
    finally:
        ctx.close()

