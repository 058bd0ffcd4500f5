"""Builds the Gradio Blocks app from the tabs (one module per tab in webapp/tabs/).

First start: the server answers before the demo clips exist (they render in a background thread, see
``Library.start_demo_clips``). Until they are ready the Library and Chat tabs show a "preparing demo
clips" notice; a timer polls the status once a second and, when the clips are in, hides the notice and
refreshes the gallery, the label sets and the chat's video list. ``/demo_status`` tells scripts.
"""

from __future__ import annotations

import importlib
import logging

import gradio as gr

from webapp.i18n import I18N, add_translations, t
from webapp.state import AppState

log = logging.getLogger(__name__)

# (module, title key). A tab module exposes build(state, shared) -> dict of components that later tabs may use.
TABS = (
    ("webapp.tabs.library", "视频库"),
    ("webapp.tabs.chat", "对话检测"),
    ("webapp.tabs.prompt_lab", "提示词实验室"),
    ("webapp.tabs.reports", "报告"),
    ("webapp.tabs.heatmap", "异常热力图"),
    ("webapp.tabs.jobs", "任务"),
)
NOTICE_TABS = ("library", "chat")  # where the "preparing demo clips" notice shows

DEMO_PREPARING = "⏳ 正在准备演示视频…（首次启动时生成合成演示片段，需要几秒钟；完成后会自动出现在这里）"
add_translations({
    DEMO_PREPARING: "⏳ Preparing demo clips… (the first start renders synthetic demo clips, which takes a few "
                    "seconds; they appear here by themselves when ready)",
})

CSS = """
#lib-gallery .caption-label { font-size: 12px; }
.verdict-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 12px; }
.demo-notice { border-left: 4px solid #f59e0b; padding: 6px 10px; background: var(--block-background-fill); }
#chat-raw { max-height: 320px; overflow: auto; }
#chat-raw .cm-editor { max-height: 300px; }
#chat-raw .cm-scroller { overflow: auto; }
#chat-refresh { min-width: 0 !important; white-space: nowrap; }
"""


def demo_failed_text(error: str | None, lang: str = "zh") -> str:
    from webapp.messages import escape_md

    if lang == "en":
        return f"⚠️ The demo clips could not be rendered: {escape_md(error or 'unknown error')}"
    return f"⚠️ 演示视频生成失败：{escape_md(error or '未知错误')}"


def build_app(state: AppState) -> gr.Blocks:
    with gr.Blocks(title="GhostProbe Studio") as demo:
        gr.Markdown("## " + t("GhostProbe Studio · 鬼探头检测工作台"), elem_id="title")
        shared: dict[str, dict] = {}
        notices: list[gr.Markdown] = []
        preparing = state.library.demo_status.preparing
        with gr.Tabs():
            for module_name, title in TABS:
                module = importlib.import_module(module_name)
                name = module_name.rsplit(".", 1)[-1]
                with gr.Tab(t(title), id=name, elem_id=f"tab-{name}"):
                    if name in NOTICE_TABS:
                        notices.append(gr.Markdown(t(DEMO_PREPARING), visible=preparing, elem_id=f"{name}-demo-notice",
                                                   elem_classes=["demo-notice"]))
                    shared[name] = module.build(state, shared) or {}
        lib = shared.get("library")
        if lib:
            demo.load(lib["load"], lib["filters"], [lib["gallery"], lib["ids"]])
        _wire_demo_notice(demo, state, shared, notices)
    return demo


def _wire_demo_notice(demo: gr.Blocks, state: AppState, shared: dict[str, dict], notices: list) -> None:
    timer = gr.Timer(1.0, active=False)
    lib = shared.get("library") or {}
    chat = shared.get("chat") or {}
    label_set = (lib.get("filters") or [None])[0]
    extra_out = [c for c in (label_set, lib.get("gallery"), lib.get("ids"), chat.get("video")) if c is not None]

    def on_load(request: gr.Request):
        from webapp.messages import lang_of

        s = state.library.demo_status
        if s.state == "failed":
            return (*[gr.update(value=demo_failed_text(s.error, lang_of(request)), visible=True) for _ in notices],
                    gr.Timer(active=False))
        return (*[gr.update(visible=s.preparing) for _ in notices], gr.Timer(active=s.preparing))

    def on_tick(ls, lf, q, request: gr.Request):
        from webapp.messages import lang_of

        s = state.library.demo_status
        if s.preparing:
            return (*[gr.skip() for _ in notices], gr.skip(), *[gr.skip() for _ in extra_out])
        if s.state == "failed":
            notice = [gr.update(value=demo_failed_text(s.error, lang_of(request)), visible=True) for _ in notices]
        else:
            notice = [gr.update(visible=False) for _ in notices]
        updates = []
        new_set = ls
        if label_set is not None:
            from reports import labels as lab

            names = [x["name"] for x in lab.list_sets(state.store)]
            new_set = ls if ls else ("demo" if "demo" in names else ls)
            choices = _label_set_choices(state)
            updates.append(gr.update(choices=choices, value=new_set) if choices is not None else gr.update(value=new_set))
        if lib.get("gallery") is not None:
            try:
                items, ids = lib["load"](new_set, lf, q)
            except Exception as e:
                log.warning("gallery refresh after the demo clips failed: %s", e)
                items, ids = gr.skip(), gr.skip()
            updates += [items, ids]
        if chat.get("video") is not None:
            vc = chat.get("video_choices")
            updates.append(gr.update(choices=vc()) if vc else gr.skip())
        return (*notice, gr.Timer(active=False), *updates)

    demo.load(on_load, None, [*notices, timer])
    inputs = list(lib.get("filters") or [])
    if len(inputs) != 3:
        inputs = [gr.State(""), gr.State("all"), gr.State("")]
    timer.tick(on_tick, inputs, [*notices, timer, *extra_out], show_progress="hidden")

    def demo_status() -> dict:
        """Where the first-start demo clips stand: state (not_needed | preparing | ready | failed), clips, seconds."""
        return state.library.demo_status.to_dict()

    gr.api(demo_status, api_name="demo_status")


def _label_set_choices(state: AppState):
    """The Library tab's label-set choices (its own helper when it has one)."""
    try:
        from webapp.tabs import library as libtab

        return libtab._set_choices(state)
    except Exception:
        return None


def launch_kwargs(state: AppState) -> dict:
    c = state.config
    return dict(
        i18n=I18N,
        css=CSS,
        auth=c.auth,
        max_file_size=f"{c.max_upload_mb:g}mb",
        allowed_paths=[str(p) for p in (*c.all_roots, c.cache_dir)],
        footer_links=["api", "settings"],
        # Gradio's run history would copy every public call's outputs (verdicts, video names, tables, charts)
        # into the browser's localStorage and re-read and re-write all of it on every click: the product
        # keeps its own response log, so nothing about the library is left in a browser and clicks stay fast.
        run_history=False,
    )
