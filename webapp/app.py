"""Builds the Gradio Blocks app from the tabs (one module per tab in webapp/tabs/)."""

from __future__ import annotations

import importlib
import logging

import gradio as gr

from webapp.i18n import I18N, t
from webapp.state import AppState

log = logging.getLogger(__name__)

# (module, title key). A tab module exposes build(state, shared) -> dict of components that later tabs may use.
TABS = (
    ("webapp.tabs.library", "视频库"),
    ("webapp.tabs.chat", "对话检测"),
    ("webapp.tabs.prompt_lab", "提示词实验室"),
    ("webapp.tabs.reports", "报告"),
    ("webapp.tabs.heatmap", "异常热力图"),
)

CSS = """
#lib-gallery .caption-label { font-size: 12px; }
.verdict-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 12px; }
"""


def build_app(state: AppState) -> gr.Blocks:
    with gr.Blocks(title="GhostProbe Studio") as demo:
        gr.Markdown(f"## {'GhostProbe Studio · 鬼探头检测工作台'}", elem_id="title")
        shared: dict[str, dict] = {}
        with gr.Tabs():
            for module_name, title in TABS:
                module = importlib.import_module(module_name)
                name = module_name.rsplit(".", 1)[-1]
                with gr.Tab(t(title), id=name, elem_id=f"tab-{name}"):
                    shared[name] = module.build(state, shared) or {}
        lib = shared.get("library")
        if lib:
            demo.load(lib["load"], lib["filters"], [lib["gallery"], lib["ids"]])
    return demo


def launch_kwargs(state: AppState) -> dict:
    c = state.config
    return dict(
        i18n=I18N,
        css=CSS,
        auth=c.auth,
        max_file_size=f"{c.max_upload_mb:g}mb",
        allowed_paths=[str(p) for p in (*c.all_roots, c.cache_dir)],
        footer_links=["api", "settings"],
    )
