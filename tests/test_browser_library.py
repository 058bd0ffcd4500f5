"""The Library tab in headless Chromium against the real app, plus one gradio_client call."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from tests.appserver import RunningApp
from tests.conftest import DADA_DIR

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HAS_DADA = (DADA_DIR / "labels.csv").exists()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    work = tmp_path_factory.mktemp("app")
    roots = [DADA_DIR] if HAS_DADA else []
    allowed = work / "server-folders"  # the only place an admin may add library folders from the UI
    allowed.mkdir()
    with RunningApp(work, library_roots=roots, env={"GHOSTPROBE_ALLOW_ADD_ROOT": str(allowed)}) as running:
        running.allowed = allowed
        yield running


def _open(page, app):
    page.goto(app.url + "/?__theme=light")
    page.wait_for_selector("#lib-gallery")
    page.wait_for_function("() => document.querySelector('#lib-gallery') && "
                           "document.querySelector('#lib-gallery').innerText.includes('synth_')", timeout=120_000)


def _md(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} [data-testid='markdown']").inner_text().strip()


def _wait_md(page, elem_id: str, text: str, timeout: int = 120_000) -> str:
    page.wait_for_function(
        f"() => (document.querySelector(\"#{elem_id} [data-testid='markdown']\")?.innerText || '').includes({text!r})",
        timeout=timeout)
    return _md(page, elem_id)


def _options(page, elem_id: str) -> list[str]:
    """The choices a dropdown offers (opened, read, closed again)."""
    page.locator(f"#{elem_id} input").click()
    page.wait_for_selector("[role='option']")
    texts = page.locator("[role='option']").all_inner_texts()
    page.keyboard.press("Escape")
    return [t.strip() for t in texts]


def _has_option(page, elem_id: str, text: str, timeout_s: float = 30.0) -> bool:
    """Whether the dropdown offers a choice containing ``text`` (asked again until the page has loaded)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        if any(text in o for o in _options(page, elem_id)):
            return True
        if time.monotonic() > deadline:
            return False
        page.wait_for_timeout(1000)


def _import_csv(page, path, name: str, replace: bool = False) -> None:
    page.locator("#lib-import").get_by_text("导入标签").first.click() if not page.locator(
        "#lib-set-name").is_visible() else None
    clear = page.locator("#lib-label-file button[aria-label='Clear'], #lib-label-file button[title='Clear']")
    if clear.count():
        clear.first.click()
    page.locator("#lib-label-file input[type=file]").set_input_files(str(path))
    page.locator("#lib-set-name input, #lib-set-name textarea").first.fill(name)
    if replace:
        page.locator("#lib-replace input").check()
    page.click("#lib-import-btn")


def _captions(page) -> list[str]:
    return page.locator("#lib-gallery").inner_text().split("\n")


def _click_caption(page, text: str) -> None:
    page.locator("#lib-gallery button, #lib-gallery .thumbnail-item").filter(has_text=text).first.click()


def _assert_plays(page) -> None:
    page.wait_for_function("() => { const v = document.querySelector('#lib-player video'); return v && v.src; }",
                           timeout=120_000)
    page.evaluate("() => { const v = document.querySelector('#lib-player video'); v.muted = true; v.play(); }")
    page.wait_for_function("() => { const v = document.querySelector('#lib-player video');"
                           " return v.readyState >= 2 && v.currentTime > 0.2 && !v.error; }", timeout=60_000)


def test_library_lists_demo_clips(page, app):
    _open(page, app)
    demo_names = [r["video_id"] for r in csv.DictReader(open(app.library / "demo" / "labels.csv"))]
    text = page.locator("#lib-gallery").inner_text()
    for name in demo_names:
        assert name in text
    # The demo label set is selected, so badges are shown.
    assert "鬼探头" in text


def test_demo_clip_plays(page, app):
    _open(page, app)
    demo_name = next(r["video_id"] for r in csv.DictReader(open(app.library / "demo" / "labels.csv")))
    _click_caption(page, demo_name)
    _assert_plays(page)
    assert demo_name in page.locator("#lib-meta").inner_text()


@pytest.mark.skipif(not HAS_DADA, reason="../shared/data/dada-dev is absent")
def test_dada_avi_plays_after_transcode(page, app):
    _open(page, app)
    page.locator("#lib-search input, #lib-search textarea").first.fill("images_5_046")
    page.locator("#lib-search input, #lib-search textarea").first.press("Enter")
    page.wait_for_function("() => !document.querySelector('#lib-gallery').innerText.includes('synth_')")
    _click_caption(page, "images_5_046")
    _assert_plays(page)
    meta = page.locator("#lib-meta").inner_text()
    assert "1584×660" in meta and "mpeg4" in meta.lower()


def test_upload_appears_and_bad_upload_is_one_sentence(page, app, tmp_path):
    from tests.media import write_mp4v

    clip = write_mp4v(tmp_path / "my_upload_clip.mp4")
    _open(page, app)
    page.locator("#lib-upload input[type=file]").set_input_files(str(clip))
    page.wait_for_function("() => document.querySelector('#lib-status').innerText.includes('my_upload_clip.mp4')",
                           timeout=120_000)
    page.wait_for_function("() => document.querySelector('#lib-gallery').innerText.includes('my_upload_clip.mp4')")
    _assert_plays(page)  # the uploaded OpenCV mp4v clip is transcoded and plays
    stored = list((app.data / "uploads").iterdir())
    assert len([p for p in stored if p.suffix == ".mp4"]) == 1

    bad = tmp_path / "notes.mp4"
    bad.write_text("this is a text file, not a video\n" * 50)
    page.locator("#lib-upload input[type=file]").set_input_files(str(bad))
    page.wait_for_function("() => document.querySelector('#lib-status').innerText.includes('notes.mp4')")
    status = page.locator("#lib-status").inner_text().strip()
    assert "⚠️" in status and len(status.splitlines()) == 1 and "Traceback" not in status
    assert len([p for p in (app.data / "uploads").iterdir() if p.suffix == ".mp4"]) == 1  # nothing stored


def test_gradio_client_lists_library(app):
    from gradio_client import Client

    client = Client(app.url, verbose=False)
    rows = client.predict(label_set="demo", label_filter="ghost_probing", api_name="/library_videos")
    labels = list(csv.DictReader(open(app.library / "demo" / "labels.csv")))
    positives = {r["video_id"] for r in labels if r["ghost_probing"] == "1"}
    assert {r["video_id"] for r in rows} == positives
    assert all(r["label"]["ghost_probing"] is True for r in rows)
    everything = client.predict(label_set="", label_filter="all", api_name="/library_videos")
    assert len(everything) >= len(labels) + (12 if HAS_DADA else 0)


def _write_labels(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "ground_truth_label", "note"])
        w.writerows(rows)
    return path


def test_label_sets_show_up_after_import_on_refresh_and_on_load(page, browser, app, tmp_path):
    demo = [r["video_id"] for r in csv.DictReader(open(app.library / "demo" / "labels.csv"))]
    other = browser.new_context(locale="zh-CN").new_page()  # a second browser, open before the import
    try:
        other.set_default_timeout(60_000)
        _open(other, app)
        _open(page, app)
        assert not any(o.startswith("browser-set") for o in _options(page, "lib-label-set"))
        csv_path = _write_labels(tmp_path / "set.csv", [[demo[0], "2s: ghost probing", ""], [demo[1], "none", ""],
                                                        ["not_in_library.avi", "none", ""]])
        _import_csv(page, csv_path, "browser-set")
        status = _wait_md(page, "lib-import-status", "browser-set")
        assert status.startswith("✅") and "3 个视频" in status and "其中 2 个在视频库中" in status, status
        page.wait_for_function("() => document.querySelector('#lib-label-set input').value.startsWith('browser-set')")
        opts = _options(page, "lib-label-set")
        assert any("browser-set (3)" in o for o in opts), opts
        # the browser that was open before sees it after Refresh, a new one on load
        assert not any(o.startswith("browser-set") for o in _options(other, "lib-label-set"))
        other.click("#lib-refresh")
        assert _has_option(other, "lib-label-set", "browser-set (3)")
        fresh = browser.new_context(locale="zh-CN").new_page()
        try:
            fresh.set_default_timeout(60_000)
            _open(fresh, app)
            assert _has_option(fresh, "lib-label-set", "browser-set (3)")
        finally:
            fresh.context.close()
    finally:
        other.context.close()


def test_bad_label_file_is_shown_whole_escaped_and_in_chinese(page, app, tmp_path):
    _open(page, app)
    bad = _write_labels(tmp_path / "bad.csv", [["a.avi", "maybe", ""], ["", "none", ""], ["c.avi", "none", ""]])
    _import_csv(page, bad, "bad-set")
    status = _wait_md(page, "lib-import-status", "行有误")
    assert status.startswith("⚠️") and "第 2 行" in status and "第 3 行" in status, status  # both rows, not one line
    assert "'<t>s: ghost probing'" in status  # the tag-like text is shown literally, not eaten as HTML
    # a name that exists already: the Chinese sentence, not the backend's English
    demo_csv = app.library / "demo" / "labels.csv"
    _open(page, app)  # a fresh page: the file box is empty again
    _import_csv(page, demo_csv, "demo")
    status = _wait_md(page, "lib-import-status", "已存在")
    assert "标签集“demo”已存在" in status and "already exists" not in status


def test_badges_carry_a_tooltip_and_an_empty_filter_says_so(page, app):
    _open(page, app)
    page.wait_for_function("() => document.querySelector('#lib-gallery').innerText.includes('鬼探头')")
    page.wait_for_function("() => [...document.querySelectorAll('#lib-gallery .caption-label')].every(e => e.title)")
    caps = page.locator("#lib-gallery .caption-label")
    for i in range(caps.count()):
        title = caps.nth(i).get_attribute("title")
        assert title and " · " in title and title == caps.nth(i).inner_text().strip()  # the whole name and badge
        assert caps.nth(i).evaluate("e => getComputedStyle(e).whiteSpace") == "normal"  # wraps instead of cutting
    assert "显示" in _md(page, "lib-empty")
    box = page.locator("#lib-search input, #lib-search textarea").first
    box.fill("no-such-clip-name")
    box.press("Enter")
    text = _wait_md(page, "lib-empty", "没有符合筛选条件的视频")
    assert "清空搜索" in text
    # the upload box says how to upload
    assert "点击上传" in page.locator("#lib-upload").inner_text()


def test_english_mode_is_english(page_en, app):
    page = page_en
    _open(page, app)
    assert "ghost probing detection" in page.locator("#title").inner_text()
    assert page.get_by_role("tab", name="Library").count() == 1
    assert "All" in page.locator("#lib-filter").inner_text() and "Unlabelled" in page.locator("#lib-filter").inner_text()
    assert "Click to Upload" in page.locator("#lib-upload").inner_text()
    page.wait_for_function("() => document.querySelector('#lib-gallery').innerText.includes('ghost probing')")
    demo_name = next(r["video_id"] for r in csv.DictReader(open(app.library / "demo" / "labels.csv")))
    _click_caption(page, demo_name)
    page.wait_for_function("() => document.querySelector('#lib-meta').innerText.includes('Resolution')")
    meta = page.locator("#lib-meta").inner_text()
    assert "Frame rate" in meta and "分辨率" not in meta
    head = page.locator("#lib-video-labels").inner_text()
    assert "Label set" in head and "标签集" not in head
    labels = page.locator("#lib-video-labels").inner_text()
    assert "ghost probing" in labels or "no ghost probing" in labels
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in _md(page, "lib-empty"))


def test_several_files_and_a_zip_in_one_upload(page, app, tmp_path):
    import zipfile

    from tests.media import write_mp4v, write_text_renamed

    a = write_mp4v(tmp_path / "multi_a.mp4", n_frames=20)
    b = write_mp4v(tmp_path / "multi_b.mp4", n_frames=24)
    c = write_mp4v(tmp_path / "zipped_c.mp4", n_frames=28)
    fake = write_text_renamed(tmp_path / "zipped_fake.mp4")
    z = tmp_path / "clips.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(c, "clips/zipped_c.mp4")
        zf.write(fake, "clips/zipped_fake.mp4")
    _open(page, app)
    page.locator("#lib-upload input[type=file]").set_input_files([str(a), str(b), str(z)])
    status = _wait_md(page, "lib-status", "处理了")
    assert status.startswith("⚠️") and "3 个视频已加入" in status and "1 个未能加入" in status, status
    assert "zipped_fake.mp4" in status and "不是可读取的视频" in status
    for name in ("multi_a.mp4", "multi_b.mp4", "zipped_c.mp4"):
        page.wait_for_function(f"() => document.querySelector('#lib-gallery').innerText.includes('{name}')")


def test_admin_adds_a_server_folder_within_the_allowed_one(page, app, tmp_path):
    from tests.media import write_mp4v

    folder = app.allowed / "dashcam-2026"
    folder.mkdir()
    write_mp4v(folder / "server_side_clip.mp4", n_frames=20)
    _open(page, app)
    page.locator("#lib-add-root").get_by_text("添加服务器文件夹为视频库目录").first.click()
    page.locator("#lib-root-path input, #lib-root-path textarea").first.fill(str(tmp_path))
    page.click("#lib-root-add")
    status = _wait_md(page, "lib-root-status", "不在服务器允许的目录内")
    assert status.startswith("⚠️")
    page.locator("#lib-root-path input, #lib-root-path textarea").first.fill(str(folder))
    page.click("#lib-root-add")
    status = _wait_md(page, "lib-root-status", "新增 1 个视频")
    assert status.startswith("✅") and str(folder) in status.replace("\\", "")
    page.wait_for_function("() => document.querySelector('#lib-gallery').innerText.includes('server_side_clip.mp4')")
    _click_caption(page, "server_side_clip.mp4")
    _assert_plays(page)
