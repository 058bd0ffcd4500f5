"""UI text: Chinese first, English available (Gradio's I18n picks by the browser's language).

Keys are the Chinese text itself, so the source reads in Chinese and a missing translation still
shows Chinese. Add a key here whenever a tab adds a label.
"""

from __future__ import annotations

import gradio as gr

EN: dict[str, str] = {
    "GhostProbe Studio · 鬼探头检测工作台": "GhostProbe Studio · ghost probing detection",
    "视频库": "Library",
    "对话检测": "Chat & Detect",
    "提示词实验室": "Prompt Lab",
    "报告": "Reports",
    "标签集": "Label set",
    "标签筛选": "Label filter",
    "全部": "All",
    "鬼探头": "Ghost probing",
    "非鬼探头": "Not ghost probing",
    "加塞": "Cut-in",
    "未标注": "Unlabelled",
    "搜索文件名": "Search file name",
    "刷新": "Refresh",
    "视频": "Videos",
    "上传视频": "Upload a video",
    "播放器": "Player",
    "元数据": "Metadata",
    "该视频的标签": "Labels of this video",
    "按路径打开（仅限视频库目录）": "Open by path (library folders only)",
    "打开": "Open",
    "导入标签": "Import labels",
    "标签文件 (CSV)": "Label file (CSV)",
    "标签集名称": "Label set name",
    "格式": "Format",
    "覆盖同名标签集": "Replace a set of the same name",
    "导入": "Import",
    "类别预设（弱标签）": "Category preset (weak labels)",
    "预设": "Preset",
    "应用预设": "Apply preset",
    "状态": "Status",
    "选择视频": "Pick a video",
}
ZH: dict[str, str] = {k: k for k in EN}

I18N = gr.I18n(zh=ZH, en=EN, **{"zh-CN": ZH, "zh-TW": ZH})


def add_translations(en: dict[str, str]) -> None:
    """Tabs register their own strings at import: ``add_translations({"中文": "English"})``.

    The I18n object keeps references to these dicts, so strings added before launch are served.
    """
    EN.update(en)
    ZH.update({k: k for k in en})


def t(key: str):
    """The I18n token for a UI string (its Chinese text is the key)."""
    if key not in EN:
        raise KeyError(f"UI string without an English translation: {key}")
    return I18N(key)
