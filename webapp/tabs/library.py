"""视频库 (Library) tab: grid with thumbnails and label badges, filters, upload, player, metadata, label import.

Run-time text comes from ``webapp.messages`` in the browser's language; static labels from
``webapp.i18n``. The label-set dropdown is rebuilt on page load, on Refresh and after every import,
so a new browser sees every set.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import gradio as gr

from reports import labels as lab
from webapp import library_roots as roots_admin
from webapp import messages as msg
from webapp.i18n import add_translations, t
from webapp.state import AppState, is_user_error

log = logging.getLogger(__name__)

FORMAT_ZH = ("格式：DADA 风格 `video_id,ground_truth_label,note`（`none` / `5s: ghost probing` / `1s: cut-in`），"
             "或通用风格 `video_id,ghost_probing,onset_s`（1/0、true/false、是/否）。有任何一行出错则整份文件不导入，并列出出错的行。")
WEAK_ZH = ("⚠️ **类别预设是弱标签**：它只按 DADA 文件名中的事故类别打标签（`images_<类别>_<编号>`），"
           "不是人工对鬼探头的判断；报告中会标明“弱标签”。优先使用人工标签。")
add_translations({
    "上传视频（可多选，或一个 .zip）": "Upload videos (several at once, or a .zip)",
    "添加服务器文件夹为视频库目录": "Add a server folder as a library folder",
    "服务器上的文件夹（绝对路径）": "Folder on the server (absolute path)",
    "添加文件夹": "Add folder",
    "例如 /mnt/dashcam": "e.g. /mnt/dashcam",
    "例如 dada-dev": "e.g. dada-dev",
    "例如 dada-crossing": "e.g. dada-crossing",
    "视频库中的相对路径或绝对路径": "a path inside the library folders",
    "自动": "Auto",
    "通用": "Generic",
    FORMAT_ZH: "Formats: DADA style `video_id,ground_truth_label,note` (`none` / `5s: ghost probing` / `1s: cut-in`), "
                "or generic `video_id,ghost_probing,onset_s` (1/0, true/false, yes/no). A file with any bad row "
                "imports nothing and names each bad row.",
    WEAK_ZH: "⚠️ **Category presets are weak labels**: they label by the accident category in the DADA file name "
                 "(`images_<category>_<clip>`), not by a person's judgement of ghost probing; reports mark them as "
                 "weak labels. Prefer human labels.",
})

FILTER_KEYS = ("all", "ghost_probing", "not_ghost_probing", "cut_in", "unlabelled")
FILTERS = [(t("全部"), "all"), (t("鬼探头"), "ghost_probing"), (t("非鬼探头"), "not_ghost_probing"), (t("加塞"), "cut_in"),
           (t("未标注"), "unlabelled")]
ZIP_MEMBERS_MAX = 500

msg.add_messages({
    "lib_meta_head": {"zh": "| 项目 | 值 |", "en": "| Field | Value |"},
    "lib_res": {"zh": "分辨率", "en": "Resolution"}, "lib_fps": {"zh": "帧率", "en": "Frame rate"},
    "lib_frames": {"zh": "帧数", "en": "Frames"}, "lib_dur": {"zh": "时长", "en": "Duration"},
    "lib_codec": {"zh": "编码", "en": "Codec"}, "lib_size": {"zh": "大小", "en": "Size"},
    "lib_origin": {"zh": "来源", "en": "Origin"},
    "origin_demo": {"zh": "演示", "en": "demo"}, "origin_library": {"zh": "视频库", "en": "library"},
    "origin_upload": {"zh": "上传", "en": "upload"},
    "lib_label_cols": {"zh": "标签集|标签|出现时间 (s)|备注|来源", "en": "Label set|Label|Onset (s)|Note|Source"},
    "lib_empty_all": {"zh": "视频库里还没有视频：上传视频，或把视频放进视频库目录后点“刷新”。",
                      "en": "The library has no video yet: upload one, or put videos into a library folder and press Refresh."},
    "lib_empty_filter": {"zh": "没有符合筛选条件的视频（共 {total} 个视频）：换一个标签筛选或清空搜索。",
                         "en": "No video matches the filters ({total} videos in all): pick another label filter or clear the search."},
    "lib_count": {"zh": "显示 {n} / {total} 个视频。", "en": "Showing {n} of {total} videos."},
    "lib_uploaded": {"zh": "已上传 {v}", "en": "Uploaded {v}"},
    "lib_known": {"zh": "该视频已在库中：{v}（按内容识别，未重复保存）", "en": "Already in the library: {v} (recognised by content, not stored twice)"},
    "lib_bad_file": {"zh": "{name}：{why}", "en": "{name}: {why}"},
    "lib_upload_summary": {"zh": "处理了 {n} 个文件（zip 中的文件逐个计算）：{ok} 个视频已加入，{known} 个已在库中，{bad} 个未能加入。",
                           "en": "{n} files handled (each file inside a zip counts): {ok} videos added, {known} already "
                                 "in the library, {bad} not added."},
    "lib_zip_bad": {"zh": "{name} 不是可读取的 zip 文件。", "en": "{name} is not a readable zip file."},
    "lib_zip_empty": {"zh": "{name} 中没有视频文件。", "en": "{name} holds no video file."},
    "lib_zip_many": {"zh": "{name} 中有 {n} 个文件，超过上限 {max} 个。", "en": "{name} holds {n} files, over the limit of {max}."},
    "lib_zip_big": {"zh": "{name} 有 {mb:.0f} MB，超过上传上限 {lim:g} MB。", "en": "{name} is {mb:.0f} MB, over the upload limit of {lim:g} MB."},
    "lib_not_video": {"zh": "不是视频文件（可接受：{exts}，或 .zip）。", "en": "not a video file (accepted: {exts}, or .zip)."},
    "lib_opened": {"zh": "已打开 {v}", "en": "Opened {v}"},
    "lib_no_csv": {"zh": "请先选择一个标签 CSV 文件。", "en": "Choose a label CSV file first."},
    "lib_imported": {"zh": "已导入标签集 **{s}**：{n} 个视频，鬼探头 {gp}，加塞 {ci}，无 {no}；其中 {inlib} 个在视频库中。",
                     "en": "Imported label set **{s}**: {n} videos, ghost probing {gp}, cut-in {ci}, none {no}; {inlib} of them are in the library."},
    "lib_preset": {"zh": "已应用预设 {p} → **{s}**（弱标签）：{n} 个视频，其中 {gp} 个按类别标为鬼探头。",
                   "en": "Applied preset {p} → **{s}** (weak labels): {n} videos, {gp} labelled ghost probing by category."},
    "lib_root_added": {"zh": "已把 {p} 加为视频库目录：新增 {n} 个视频。", "en": "Added {p} as a library folder: {n} new videos."},
    "lib_root_known": {"zh": "{p} 已经是视频库目录。", "en": "{p} is already a library folder."},
    "lib_roots_now": {"zh": "视频库目录：{roots}", "en": "Library folders: {roots}"},
})
msg.add_error_translations([
    (r"Adding library folders from the UI is off; set (?P<v>\w+)=1 .*", "界面添加视频库目录未开启：需要在服务器上设置 {v}=1（或允许的上级目录）。"),
    (r"Give the folder's absolute path on the server\.", "请填写服务器上文件夹的绝对路径。"),
    (r"(?P<p>.+) is not an absolute path; give the folder's full path on the server\.", "{p} 不是绝对路径：请填写完整路径。"),
    (r"The file system root cannot be a library folder\.", "文件系统根目录不能作为视频库目录。"),
    (r"(?P<p>.+) is outside the folders this server allows \((?P<a>.+)\)\.", "{p} 不在服务器允许的目录内（{a}）。"),
    (r"(?P<p>.+) does not exist on the server\.", "服务器上不存在 {p}。"),
    (r"(?P<p>.+) is a file, not a folder\.", "{p} 是文件，不是文件夹。"),
    (r"(?P<p>.+) cannot be read by the server\.", "服务器无法读取 {p}。"),
    (r"A folder path cannot contain a NUL byte\.", "文件夹路径不能包含 NUL 字符。"),
])


def _set_choices(state: AppState, lang: str = "zh") -> list[tuple[str, str]]:
    out = [(msg.m("no_label_set", lang), "")]
    for s in lab.list_sets(state.store):
        weak = msg.m("weak_set", lang) if s["weak"] else ""
        out.append((f"{s['name']} ({s['videos']}){weak}", s["name"]))
    return out


def _default_set(state: AppState) -> str:
    sets = lab.list_sets(state.store)
    human = [s["name"] for s in sets if not s["weak"]]
    return (human or [s["name"] for s in sets] or [""])[-1]


def _exts() -> list[str]:
    from engines import video as vid

    return sorted(vid.VIDEO_EXTENSIONS)


def gallery_items(state: AppState, label_set: str, label_filter: str, text: str,
                  lang: str = "zh") -> tuple[list, list[str]]:
    items, ids = [], []
    for r in state.library.videos(label_set or None, label_filter or "all", text or ""):
        try:
            thumb = str(state.library.thumbnail(r["video_id"]))
        except Exception as e:  # a file that vanished or broke after indexing: leave it out, say why in the log
            log.warning("thumbnail failed for %s: %s", r["video_id"], e)
            continue
        badge = f" · {msg.badge(r['label'], lang)}" if label_set else ""
        items.append((thumb, f"{r['video_id']}{badge}"))
        ids.append(r["video_id"])
    return items, ids


def empty_md(state: AppState, n_shown: int, lang: str = "zh") -> str:
    """A sentence for an empty grid (nothing indexed / nothing matches); the count otherwise."""
    total = int(state.store.scalar("SELECT count(*) FROM videos") or 0)
    if n_shown:
        return msg.m("lib_count", lang, n=n_shown, total=total)
    if not total:
        return msg.m("lib_empty_all", lang)
    return msg.m("lib_empty_filter", lang, total=total)


def metadata_md(row: dict[str, Any], lang: str = "zh") -> str:
    size_mb = (row.get("size_bytes") or 0) / 1e6
    e = msg.escape_md
    origin = row.get("origin") or ""
    origin_txt = msg.m(f"origin_{origin}", lang) if f"origin_{origin}" in msg.CATALOGUE else origin
    return "\n".join([
        f"**{e(row['video_id'])}**",
        "",
        msg.m("lib_meta_head", lang), "|---|---|",
        f"| {msg.m('lib_res', lang)} | {row['width']}×{row['height']} |",
        f"| {msg.m('lib_fps', lang)} | {row['fps']:g} fps |",
        f"| {msg.m('lib_frames', lang)} | {row['frames']} |",
        f"| {msg.m('lib_dur', lang)} | {row['duration_s']:.2f} s |",
        f"| {msg.m('lib_codec', lang)} | {e(row['codec'])} |",
        f"| {msg.m('lib_size', lang)} | {size_mb:.2f} MB |",
        f"| {msg.m('lib_origin', lang)} | {e(origin_txt)} |",
        f"| SHA-256 | `{row['sha256'][:16]}…` |",
    ])


def label_columns(lang: str = "zh") -> list[str]:
    return msg.m("lib_label_cols", lang).split("|")


def labels_table(state: AppState, video_id: str, lang: str = "zh"):
    import pandas as pd

    rows = [[r["label_set"], msg.badge(r, lang), r["onset_s"], r["note"] or "", r["source"] or ""]
            for r in lab.labels_for_video(state.store, video_id)] if video_id else []
    return pd.DataFrame(rows, columns=label_columns(lang))


def _jsonable(d: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if d is None else {k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v))
                                   for k, v in d.items()}


def _paths(files: Any) -> list[Path]:
    if files is None:
        return []
    if not isinstance(files, (list, tuple)):
        files = [files]
    return [Path(f if isinstance(f, str) else getattr(f, "name", str(f))) for f in files if f]


def add_files(state: AppState, files: list[Path], lang: str = "zh") -> dict[str, Any]:
    """Add uploaded files (videos and .zip archives of videos) to the library, each on its own.

    Returns {added: [row], known: [row], bad: [sentence], shown: video id to show}. A bad file or zip
    member is one sentence and leaves the others alone; nothing is written for a file that fails."""
    added, known, bad = [], [], []
    exts = set(_exts())

    def one(path: Path, name: str) -> None:
        suffix = Path(name).suffix.lower()
        if suffix not in exts:
            bad.append(msg.m("lib_bad_file", lang, name=name, why=msg.m("lib_not_video", lang, exts=" ".join(sorted(exts)))))
            return
        try:
            row, new = state.library.add_upload(path, name)
        except Exception as e:
            if not is_user_error(e):
                log.exception("upload of %s failed", name)
            text = msg.error_text(e, lang)
            bad.append(text if name in text else msg.m("lib_bad_file", lang, name=name, why=text))
            return
        (added if new else known).append(row)

    for p in files:
        if p.suffix.lower() == ".zip":
            _add_zip(state, p, one, bad, lang)
        else:
            one(p, p.name)
    shown = (added or known or [None])[0]
    return {"added": added, "known": known, "bad": bad, "shown": shown["video_id"] if shown else None}


def _add_zip(state: AppState, path: Path, one, bad: list[str], lang: str) -> None:
    name = path.name
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        bad.append(msg.m("lib_zip_bad", lang, name=name))
        return
    with zf:
        members = [i for i in zf.infolist() if not i.is_dir() and not Path(i.filename).name.startswith((".", "__MACOSX"))
                   and "__MACOSX/" not in i.filename]
        if len(members) > ZIP_MEMBERS_MAX:
            bad.append(msg.m("lib_zip_many", lang, name=name, n=len(members), max=ZIP_MEMBERS_MAX))
            return
        if not members:
            bad.append(msg.m("lib_zip_empty", lang, name=name))
            return
        limit = state.config.max_upload_bytes
        tmp = Path(tempfile.mkdtemp(prefix="gp-zip-"))
        try:
            for i, info in enumerate(members):
                member = Path(info.filename.replace("\\", "/")).name  # never a path out of the temp folder
                label = f"{name}/{info.filename}"
                if info.file_size > limit:
                    bad.append(msg.m("lib_zip_big", lang, name=label, mb=info.file_size / 1e6, lim=state.config.max_upload_mb))
                    continue
                dest = tmp / f"{i:04d}" / member
                dest.parent.mkdir()
                try:
                    with zf.open(info) as src, open(dest, "wb") as out:
                        copied = 0
                        while chunk := src.read(1 << 20):
                            copied += len(chunk)
                            if copied > limit:  # the header lied about the size (a zip bomb)
                                raise ValueError("too big")
                            out.write(chunk)
                except (zipfile.BadZipFile, ValueError, OSError, RuntimeError, NotImplementedError):
                    bad.append(msg.m("lib_bad_file", lang, name=label, why=msg.m("lib_zip_bad", lang, name=name)))
                    continue
                one(dest, member)
                dest.unlink(missing_ok=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def upload_report(res: dict[str, Any], n_files: int, lang: str = "zh") -> str:
    """The status lines of an upload: one per added/known video when few, one sentence per bad file."""
    e = msg.escape_md
    lines = []
    if n_files == 1 and len(res["added"]) + len(res["known"]) + len(res["bad"]) == 1:
        if res["added"]:
            return msg.status(msg.md("lib_uploaded", lang, v=res["added"][0]["video_id"]))
        if res["known"]:
            return msg.status(msg.md("lib_known", lang, v=res["known"][0]["video_id"]))
        return msg.status(e(res["bad"][0]), ok=False)
    ok = not res["bad"]
    lines.append(msg.status(msg.md("lib_upload_summary", lang, n=len(res["added"]) + len(res["known"]) + len(res["bad"]),
                                   ok=len(res["added"]), known=len(res["known"]), bad=len(res["bad"])), ok=ok))
    for row in res["added"][:20]:
        lines.append("- " + msg.md("lib_uploaded", lang, v=row["video_id"]))
    for row in res["known"][:20]:
        lines.append("- " + msg.md("lib_known", lang, v=row["video_id"]))
    for b in res["bad"]:
        lines.append("- ⚠️ " + e(b))
    return "\n".join(lines)


BADGE_JS = """
const css = document.createElement('style');
css.textContent = `#lib-gallery .caption-label { white-space: normal !important; max-width: 100% !important;
  left: 0; right: 0 !important; word-break: break-all; line-height: 1.25; opacity: .92 !important; }`;
document.head.appendChild(css);
const titles = () => document.querySelectorAll('#lib-gallery .caption-label').forEach(el => {
  if (el.title !== el.innerText) el.title = el.innerText;
  const btn = el.closest('button'); if (btn && btn.title !== el.innerText) btn.title = el.innerText;
});
new MutationObserver(titles).observe(document.body, {childList: true, subtree: true, characterData: true});
titles();
"""


def build(state: AppState, shared: dict[str, dict] | None = None) -> dict[str, Any]:
    """Build the tab inside the current Blocks context; returns components other tabs may reuse."""
    restored = roots_admin.restore(state.config)
    if restored:
        log.info("library folders added from the UI earlier: %s", ", ".join(map(str, restored)))
    ids_state = gr.State([])
    current = gr.State("")
    with gr.Row():
        # value None until the page loads: None means "the default set now" (a set imported or rendered after
        # start-up counts), "" means "no labels shown"
        label_set = gr.Dropdown(choices=_set_choices(state), value=None, label=t("标签集"),
                                scale=2, elem_id="lib-label-set")
        label_filter = gr.Radio(choices=FILTERS, value="all", label=t("标签筛选"), scale=3, elem_id="lib-filter")
        search = gr.Textbox(label=t("搜索文件名"), scale=2, elem_id="lib-search")
        refresh = gr.Button(t("刷新"), scale=0, elem_id="lib-refresh")
    with gr.Row():
        with gr.Column(scale=3):
            empty = gr.Markdown(elem_id="lib-empty")
            gallery = gr.Gallery(label=t("视频"), columns=4, height=520, allow_preview=False,
                                 object_fit="cover", elem_id="lib-gallery", format="jpeg")
            gr.HTML("", js_on_load=BADGE_JS, elem_id="lib-badge-js", padding=False)
            # No file_types: the browser's own refusal is an English toast; every file is checked here instead.
            upload = gr.File(label=t("上传视频（可多选，或一个 .zip）"), file_count="multiple", height=150,
                             elem_id="lib-upload")
            with gr.Row():
                open_path = gr.Textbox(label=t("按路径打开（仅限视频库目录）"), placeholder=t("视频库中的相对路径或绝对路径"),
                                       scale=4, elem_id="lib-path")
                open_btn = gr.Button(t("打开"), scale=1, elem_id="lib-open")
            status = gr.Markdown(elem_id="lib-status")
        with gr.Column(scale=2):
            player = gr.Video(label=t("播放器"), interactive=False, elem_id="lib-player", autoplay=False)
            meta = gr.Markdown(elem_id="lib-meta")
            vlabels = gr.Dataframe(value=labels_table(state, ""), label=t("该视频的标签"),
                                   interactive=False, elem_id="lib-video-labels")
    with gr.Accordion(t("导入标签"), open=False, elem_id="lib-import"):
        with gr.Row():
            label_file = gr.File(label=t("标签文件 (CSV)"), elem_id="lib-label-file", height=150)
            with gr.Column():
                set_name = gr.Textbox(label=t("标签集名称"), placeholder=t("例如 dada-dev"), elem_id="lib-set-name")
                fmt = gr.Radio(choices=[(t("自动"), "auto"), ("DADA", "dada"), (t("通用"), "generic")], value="auto",
                               label=t("格式"))
                replace = gr.Checkbox(label=t("覆盖同名标签集"), value=False, elem_id="lib-replace")
                import_btn = gr.Button(t("导入"), variant="primary", elem_id="lib-import-btn")
        gr.Markdown(t(FORMAT_ZH))
        with gr.Row():
            preset = gr.Dropdown(choices=list(lab.PRESETS), value="dada-crossing", label=t("预设"))
            preset_set = gr.Textbox(label=t("标签集名称"), placeholder=t("例如 dada-crossing"))
            preset_btn = gr.Button(t("应用预设"))
        gr.Markdown(t(WEAK_ZH))
        import_status = gr.Markdown(elem_id="lib-import-status")
    root_box = None
    if roots_admin.enabled():
        with gr.Accordion(t("添加服务器文件夹为视频库目录"), open=False, elem_id="lib-add-root") as root_box:
            with gr.Row():
                root_path = gr.Textbox(label=t("服务器上的文件夹（绝对路径）"), placeholder=t("例如 /mnt/dashcam"), scale=4,
                                       elem_id="lib-root-path")
                root_btn = gr.Button(t("添加文件夹"), scale=1, elem_id="lib-root-add")
            root_status = gr.Markdown(elem_id="lib-root-status")

    # -- handlers ----------------------------------------------------------------------------------
    def refresh_grid(ls, lf, q, request: gr.Request = None):
        state.library.scan()
        ls = _default_set(state) if ls is None else ls
        items, ids = gallery_items(state, ls, lf, q, msg.lang_of(request))
        return items, ids

    def refresh_all(ls, lf, q, request: gr.Request = None):
        """Refresh: the label sets (a set imported elsewhere appears), the grid and its empty-state sentence."""
        lang = msg.lang_of(request)
        state.library.scan()
        choices = _set_choices(state, lang)
        values = [v for _, v in choices]
        ls = ls if ls in values else _default_set(state)
        items, ids = gallery_items(state, ls, lf, q, lang)
        return gr.update(choices=choices, value=ls), items, ids, empty_md(state, len(ids), lang)

    def filter_grid(ls, lf, q, request: gr.Request = None):
        lang = msg.lang_of(request)
        ls = _default_set(state) if ls is None else ls
        items, ids = gallery_items(state, ls, lf, q, lang)
        return items, ids, empty_md(state, len(ids), lang)

    def on_page_load(ls, request: gr.Request = None):
        """A new browser: every label set in its language, the default kept when it still exists, the labels
        table headers in its language."""
        lang = msg.lang_of(request)
        choices = _set_choices(state, lang)
        values = [v for _, v in choices]
        ls = ls if ls in values and ls is not None else _default_set(state)
        n = len(state.library.videos(ls or None, "all", ""))
        return gr.update(choices=choices, value=ls), empty_md(state, n, lang), labels_table(state, "", lang)

    def show(video_id: str, lang: str):
        row = state.library.get(video_id)
        playable = state.library.playable(video_id)
        return str(playable), metadata_md(row, lang), labels_table(state, video_id, lang), video_id

    def on_select(ids: list[str], evt: gr.SelectData, request: gr.Request = None):
        lang = msg.lang_of(request)
        try:
            return (*show(ids[evt.index], lang), "")
        except Exception as e:
            if not is_user_error(e):
                log.exception("select failed")
            return None, "", labels_table(state, "", lang), "", msg.error_md(e, lang)

    skip6 = (gr.skip(),) * 6

    def on_upload(files, ls, lf, q, request: gr.Request = None):
        lang = msg.lang_of(request)
        paths = _paths(files)
        if not paths:
            return (*skip6, gr.skip(), gr.skip(), gr.skip())
        res = add_files(state, paths, lang)
        report = upload_report(res, len(paths), lang)
        items, ids = gallery_items(state, ls, lf, q, lang)
        if res["shown"]:
            try:
                return (items, ids, *show(res["shown"], lang), report, None, empty_md(state, len(ids), lang))
            except Exception as e:  # added but cannot be shown: say so after the upload lines
                report += "\n\n" + msg.error_md(e, lang)
        return (items, ids, *skip6[:4], report, None, empty_md(state, len(ids), lang))

    def on_open(p, ls, lf, q, request: gr.Request = None):
        lang = msg.lang_of(request)
        try:
            real = state.library.safe_path((p or "").strip())
            state.library.scan()
            rows = state.store.query("SELECT video_id FROM videos WHERE path = ?", [str(real)])
            if not rows:
                return (*skip6, msg.error_md(f"{p} is not a video the library can read.", lang))
            items, ids = gallery_items(state, ls, lf, q, lang)
            return (items, ids, *show(rows[0]["video_id"], lang), msg.status(msg.md("lib_opened", lang, v=rows[0]["video_id"])))
        except Exception as e:
            if not is_user_error(e):
                log.exception("open failed")
            return (*skip6, msg.error_md(e, lang))

    def _in_library(label_set: str) -> int:
        keys = {lab.video_key(r["video_id"]) for r in state.store.query("SELECT video_id FROM videos")}
        return sum(1 for r in lab.list_labels(state.store, label_set) if lab.video_key(r["video_id"]) in keys)

    def on_import(file, name, f, rep, ls, lf, q, cur, request: gr.Request = None):
        lang = msg.lang_of(request)
        paths = _paths(file)
        if not paths:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), msg.status(msg.m("lib_no_csv", lang), ok=False)
        path = paths[0]
        try:
            s = lab.import_label_csv(state.store, path, (name or "").strip() or path.stem, f, replace=rep)
        except Exception as e:
            if not is_user_error(e):
                log.exception("label import failed")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), msg.error_md(e, lang)
        state.library.scan()
        items, ids = gallery_items(state, s["label_set"], lf, q, lang)
        text = msg.md("lib_imported", lang, s=s["label_set"], n=s["videos"], gp=s["ghost_probing"], ci=s["cut_in"],
                      no=s["none"], inlib=_in_library(s["label_set"]))
        vl = labels_table(state, cur, lang)
        return (gr.update(choices=_set_choices(state, lang), value=s["label_set"]), items, ids, vl, msg.status(text))

    def on_preset(p, name, lf, q, cur, request: gr.Request = None):
        lang = msg.lang_of(request)
        try:
            state.library.scan()
            s = lab.apply_preset(state.store, p, (name or "").strip() or p, replace=True)
        except Exception as e:
            if not is_user_error(e):
                log.exception("preset failed")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), msg.error_md(e, lang)
        items, ids = gallery_items(state, s["label_set"], lf, q, lang)
        text = msg.md("lib_preset", lang, p=p, s=s["label_set"], n=s["videos"], gp=s["ghost_probing"])
        vl = labels_table(state, cur, lang)
        return (gr.update(choices=_set_choices(state, lang), value=s["label_set"]), items, ids, vl, msg.status(text))

    def on_add_root(folder, ls, lf, q, request: gr.Request = None):
        lang = msg.lang_of(request)
        try:
            real, new = roots_admin.add(state.config, folder)
            roots_admin.allow_serving(real)
            res = state.library.scan()
        except Exception as e:
            if not is_user_error(e):
                log.exception("add root failed")
            return gr.skip(), gr.skip(), gr.skip(), msg.error_md(e, lang)
        items, ids = gallery_items(state, ls, lf, q, lang)
        head = msg.md("lib_root_added", lang, p=real, n=len(res.added)) if new else msg.md("lib_root_known", lang, p=real)
        roots = msg.md("lib_roots_now", lang, roots=", ".join(str(r) for r in state.config.library_roots))
        return items, ids, empty_md(state, len(ids), lang), msg.status(head) + "\n\n" + roots

    def library_videos(label_set: str = "", label_filter: str = "all") -> list[dict]:
        """Videos in the library (JSON rows), with the label of `label_set` attached as `label`."""
        state.library.scan()
        keep = ("video_id", "origin", "sha256", "frames", "fps", "duration_s", "width", "height", "codec", "size_bytes")
        return [{k: r[k] for k in keep} | {"label": _jsonable(r["label"])}
                for r in state.library.videos(label_set or None, label_filter or "all")]

    gr.api(library_videos, api_name="library_videos")

    filters = [label_set, label_filter, search]
    refresh.click(refresh_all, filters, [label_set, gallery, ids_state, empty])
    for ev in (label_set.change, label_filter.change, search.submit):
        ev(filter_grid, filters, [gallery, ids_state, empty])
    gallery.select(on_select, [ids_state], [player, meta, vlabels, current, status])
    upload.upload(on_upload, [upload, *filters],
                  [gallery, ids_state, player, meta, vlabels, current, status, upload, empty])
    open_btn.click(on_open, [open_path, *filters], [gallery, ids_state, player, meta, vlabels, current, status])
    import_btn.click(on_import, [label_file, set_name, fmt, replace, *filters, current],
                     [label_set, gallery, ids_state, vlabels, import_status])
    preset_btn.click(on_preset, [preset, preset_set, label_filter, search, current],
                     [label_set, gallery, ids_state, vlabels, import_status])
    if root_box is not None:
        root_btn.click(on_add_root, [root_path, *filters], [gallery, ids_state, empty, root_status])
    on_load(on_page_load, [label_set], [label_set, empty, vlabels])
    return {"gallery": gallery, "ids": ids_state, "filters": filters, "load": refresh_grid, "current": current,
            "player": player}


def on_load(fn, inputs, outputs) -> None:
    """Register ``fn`` on the page load of the Blocks being built (tabs do not get the Blocks object)."""
    from gradio.context import Context

    root = Context.root_block
    if root is not None:
        root.load(fn, inputs, outputs)
