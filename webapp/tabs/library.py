"""视频库 (Library) tab: grid with thumbnails and label badges, filters, upload, player, metadata, label import."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr

from reports import labels as lab
from webapp.i18n import t
from webapp.state import AppState, is_user_error, status_md, user_message

log = logging.getLogger(__name__)

FILTERS = [("全部", "all"), ("鬼探头", "ghost_probing"), ("非鬼探头", "not_ghost_probing"), ("加塞", "cut_in"),
           ("未标注", "unlabelled")]


def _set_choices(state: AppState) -> list[tuple[str, str]]:
    out = [("（不显示标签）", "")]
    for s in lab.list_sets(state.store):
        weak = " · 弱标签" if s["weak"] else ""
        out.append((f"{s['name']} ({s['videos']}){weak}", s["name"]))
    return out


def _default_set(state: AppState) -> str:
    sets = lab.list_sets(state.store)
    human = [s["name"] for s in sets if not s["weak"]]
    return (human or [s["name"] for s in sets] or [""])[-1]


def gallery_items(state: AppState, label_set: str, label_filter: str, text: str) -> tuple[list, list[str]]:
    items, ids = [], []
    for r in state.library.videos(label_set or None, label_filter or "all", text or ""):
        try:
            thumb = str(state.library.thumbnail(r["video_id"]))
        except Exception as e:  # a file that vanished or broke after indexing: show it, say why
            log.warning("thumbnail failed for %s: %s", r["video_id"], e)
            continue
        badge = f" · {lab.label_badge(r['label'])}" if label_set else ""
        items.append((thumb, f"{r['video_id']}{badge}"))
        ids.append(r["video_id"])
    return items, ids


def metadata_md(row: dict[str, Any]) -> str:
    size_mb = (row.get("size_bytes") or 0) / 1e6
    return "\n".join([
        f"**{row['video_id']}**",
        "",
        "| 项目 | 值 |", "|---|---|",
        f"| 分辨率 | {row['width']}×{row['height']} |",
        f"| 帧率 | {row['fps']:g} fps |",
        f"| 帧数 | {row['frames']} |",
        f"| 时长 | {row['duration_s']:.2f} s |",
        f"| 编码 | {row['codec']} |",
        f"| 大小 | {size_mb:.2f} MB |",
        f"| 来源 | {row['origin']} |",
        f"| SHA-256 | `{row['sha256'][:16]}…` |",
    ])


def labels_table(state: AppState, video_id: str) -> list[list[Any]]:
    return [[r["label_set"], lab.label_badge(r), r["onset_s"], r["note"] or "", r["source"] or ""]
            for r in lab.labels_for_video(state.store, video_id)]


def _jsonable(d: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if d is None else {k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v))
                                   for k, v in d.items()}


def build(state: AppState, shared: dict[str, dict] | None = None) -> dict[str, Any]:
    """Build the tab inside the current Blocks context; returns components other tabs may reuse."""
    ids_state = gr.State([])
    current = gr.State("")
    with gr.Row():
        label_set = gr.Dropdown(choices=_set_choices(state), value=_default_set(state), label=t("标签集"),
                                scale=2, elem_id="lib-label-set")
        label_filter = gr.Radio(choices=FILTERS, value="all", label=t("标签筛选"), scale=3, elem_id="lib-filter")
        search = gr.Textbox(label=t("搜索文件名"), scale=2, elem_id="lib-search")
        refresh = gr.Button(t("刷新"), scale=0, elem_id="lib-refresh")
    with gr.Row():
        with gr.Column(scale=3):
            gallery = gr.Gallery(label=t("视频"), columns=4, height=520, allow_preview=False,
                                 object_fit="cover", elem_id="lib-gallery", format="jpeg")
            upload = gr.File(label=t("上传视频"), file_types=["video", ".avi", ".mkv"], elem_id="lib-upload")
            with gr.Row():
                open_path = gr.Textbox(label=t("按路径打开（仅限视频库目录）"), scale=4, elem_id="lib-path")
                open_btn = gr.Button(t("打开"), scale=1, elem_id="lib-open")
            status = gr.Markdown(elem_id="lib-status")
        with gr.Column(scale=2):
            player = gr.Video(label=t("播放器"), interactive=False, elem_id="lib-player", autoplay=False)
            meta = gr.Markdown(elem_id="lib-meta")
            vlabels = gr.Dataframe(headers=["标签集", "标签", "出现时间 (s)", "备注", "来源"], label=t("该视频的标签"),
                                   interactive=False, elem_id="lib-video-labels")
    with gr.Accordion(t("导入标签"), open=False, elem_id="lib-import"):
        with gr.Row():
            label_file = gr.File(label=t("标签文件 (CSV)"), file_types=[".csv"], elem_id="lib-label-file")
            with gr.Column():
                set_name = gr.Textbox(label=t("标签集名称"), placeholder="dada-dev", elem_id="lib-set-name")
                fmt = gr.Radio(choices=[("自动", "auto"), ("DADA", "dada"), ("通用", "generic")], value="auto",
                               label=t("格式"))
                replace = gr.Checkbox(label=t("覆盖同名标签集"), value=False)
                import_btn = gr.Button(t("导入"), variant="primary", elem_id="lib-import-btn")
        gr.Markdown("格式：DADA 风格 `video_id,ground_truth_label,note`（`none` / `5s: ghost probing` / `1s: cut-in`），"
                    "或通用风格 `video_id,ghost_probing,onset_s`（1/0、true/false、是/否）。有任何一行出错则整份文件不导入，并列出出错的行。")
        with gr.Row():
            preset = gr.Dropdown(choices=list(lab.PRESETS), value="dada-crossing", label=t("预设"))
            preset_set = gr.Textbox(label=t("标签集名称"), placeholder="dada-crossing")
            preset_btn = gr.Button(t("应用预设"))
        gr.Markdown("⚠️ **类别预设是弱标签**：它只按 DADA 文件名中的事故类别打标签（`images_<类别>_<编号>`），"
                    "不是人工对鬼探头的判断；报告中会标明“弱标签”。优先使用人工标签。")
        import_status = gr.Markdown(elem_id="lib-import-status")

    # -- handlers ----------------------------------------------------------------------------------
    def refresh_grid(ls, lf, q):
        state.library.scan()
        items, ids = gallery_items(state, ls, lf, q)
        return items, ids

    def show(video_id: str):
        row = state.library.get(video_id)
        playable = state.library.playable(video_id)
        return str(playable), metadata_md(row), labels_table(state, video_id), video_id

    def on_select(ids: list[str], evt: gr.SelectData):
        try:
            return (*show(ids[evt.index]), "")
        except Exception as e:
            if not is_user_error(e):
                log.exception("select failed")
            return None, "", [], "", status_md(user_message(e), ok=False)

    def on_upload(file, ls, lf, q):
        if file is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), None
        path = Path(file if isinstance(file, str) else file.name)
        try:
            row, new = state.library.add_upload(path, path.name)
        except Exception as e:
            if not is_user_error(e):
                log.exception("upload failed")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), status_md(user_message(e), False), None
        items, ids = gallery_items(state, ls, lf, q)
        msg = (f"已上传 {row['video_id']}" if new else f"该视频已在库中：{row['video_id']}（按内容识别，未重复保存）")
        return (items, ids, *show(row["video_id"]), status_md(msg), None)

    def on_open(p, ls, lf, q):
        try:
            real = state.library.safe_path(p.strip())
            state.library.scan()
            rows = state.store.query("SELECT video_id FROM videos WHERE path = ?", [str(real)])
            if not rows:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), status_md(
                    f"{p} is not a video the library can read.", False)
            items, ids = gallery_items(state, ls, lf, q)
            return (items, ids, *show(rows[0]["video_id"]), status_md(f"已打开 {rows[0]['video_id']}"))
        except Exception as e:
            if not is_user_error(e):
                log.exception("open failed")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), status_md(user_message(e), False)

    def on_import(file, name, f, rep, ls, lf, q, cur):
        if file is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), status_md("请先选择一个标签 CSV 文件。", False)
        try:
            s = lab.import_label_csv(state.store, Path(file if isinstance(file, str) else file.name),
                                     name or Path(file if isinstance(file, str) else file.name).stem, f, replace=rep)
        except Exception as e:
            if not is_user_error(e):
                log.exception("label import failed")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), status_md(user_message(e), False)
        items, ids = gallery_items(state, s["label_set"], lf, q)
        msg = (f"已导入标签集 **{s['label_set']}**：{s['videos']} 个视频，鬼探头 {s['ghost_probing']}，"
               f"加塞 {s['cut_in']}，无 {s['none']}。")
        vl = labels_table(state, cur) if cur else []
        return gr.update(choices=_set_choices(state), value=s["label_set"]), items, ids, vl, status_md(msg)

    def on_preset(p, name, lf, q, cur):
        try:
            state.library.scan()
            s = lab.apply_preset(state.store, p, name or p, replace=True)
        except Exception as e:
            if not is_user_error(e):
                log.exception("preset failed")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), status_md(user_message(e), False)
        items, ids = gallery_items(state, s["label_set"], lf, q)
        msg = f"已应用预设 {p} → **{s['label_set']}**（弱标签）：{s['videos']} 个视频，其中 {s['ghost_probing']} 个按类别标为鬼探头。"
        vl = labels_table(state, cur) if cur else []
        return gr.update(choices=_set_choices(state), value=s["label_set"]), items, ids, vl, status_md(msg)

    def library_videos(label_set: str = "", label_filter: str = "all") -> list[dict]:
        """Videos in the library (JSON rows), with the label of `label_set` attached as `label`."""
        state.library.scan()
        keep = ("video_id", "origin", "sha256", "frames", "fps", "duration_s", "width", "height", "codec", "size_bytes")
        return [{k: r[k] for k in keep} | {"label": _jsonable(r["label"])}
                for r in state.library.videos(label_set or None, label_filter or "all")]

    gr.api(library_videos, api_name="library_videos")

    filters = [label_set, label_filter, search]
    for ev in (refresh.click, label_set.change, label_filter.change, search.submit):
        ev(refresh_grid, filters, [gallery, ids_state])
    gallery.select(on_select, [ids_state], [player, meta, vlabels, current, status])
    upload.upload(on_upload, [upload, *filters], [gallery, ids_state, player, meta, vlabels, current, status, upload])
    open_btn.click(on_open, [open_path, *filters], [gallery, ids_state, player, meta, vlabels, current, status])
    import_btn.click(on_import, [label_file, set_name, fmt, replace, *filters, current],
                     [label_set, gallery, ids_state, vlabels, import_status])
    preset_btn.click(on_preset, [preset, preset_set, label_filter, search, current],
                     [label_set, gallery, ids_state, vlabels, import_status])
    return {"gallery": gallery, "ids": ids_state, "filters": filters, "load": refresh_grid, "current": current,
            "player": player}
