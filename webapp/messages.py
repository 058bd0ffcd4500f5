"""Run-time text of every tab, Chinese and English (static labels go through ``webapp.i18n``).

Three things live here:

- ``lang_of(request)``: the language a handler answers in, from the browser's ``Accept-Language``
  (the same preference Gradio's I18n reads): ``zh`` for ``zh*`` browsers, ``en`` otherwise, ``zh``
  when there is no request (the UI is Chinese first).
- ``CATALOGUE`` + ``m(key, lang, **kw)`` / ``md(...)``: one message catalogue. ``md`` escapes the
  values it interpolates for Markdown, so a run name or an error text never becomes markup.
- ``error_text(e, lang)`` / ``error_md(e, lang)``: a user error in full (every line, not only the
  first), backend sentences written in English translated for Chinese readers by ``TRANSLATIONS``,
  and escaped so ``'<t>s: ghost probing'`` shows literally.

Tabs add their strings with ``add_messages({...})`` at import, as they do with ``add_translations``.
"""

from __future__ import annotations

import html
import re
from typing import Any

LANGS = ("zh", "en")

CATALOGUE: dict[str, dict[str, str]] = {
    # -- shared ---------------------------------------------------------------------------------------
    "ok": {"zh": "完成。", "en": "Done."},
    "unknown": {"zh": "未知", "en": "unknown"},
    "none_given": {"zh": "—（未给出）", "en": "— (not given)"},
    "yes_gp": {"zh": "是（鬼探头）", "en": "yes (ghost probing)"},
    "no": {"zh": "否", "en": "no"},
    "unparsed_not_no": {"zh": "未知 — 回答无法解析，不计为“否”", "en": "unknown — the answer could not be parsed (never counted as no)"},
    "errored": {"zh": "未知 — 出错", "en": "unknown — error"},
    "n_a": {"zh": "无法计算", "en": "n/a"},
    # label badges
    "badge_none_label": {"zh": "未标注", "en": "unlabelled"},
    "badge_gp": {"zh": "鬼探头{t}{weak}", "en": "ghost probing{t}{weak}"},
    "badge_cut_in": {"zh": "加塞(非鬼探头){t}{weak}", "en": "cut-in (not ghost probing){t}{weak}"},
    "badge_no": {"zh": "无鬼探头{weak}", "en": "no ghost probing{weak}"},
    "weak_suffix": {"zh": "（弱）", "en": " (weak)"},
    "weak_set": {"zh": " · 弱标签", "en": " · weak labels"},
    "no_label_set": {"zh": "（不显示标签）", "en": "(no labels shown)"},
    # run status names
    "status_running": {"zh": "进行中", "en": "running"},
    "status_done": {"zh": "完成", "en": "done"},
    "status_cancelled": {"zh": "已取消", "en": "cancelled"},
    "status_failed": {"zh": "失败", "en": "failed"},
    "status_imported": {"zh": "导入", "en": "imported"},
    "status_partial": {"zh": "部分完成", "en": "partial"},
    "coverage": {"zh": "{scored}/{planned} 已评分", "en": "{scored}/{planned} scored"},
    "coverage_partial": {"zh": "⚠️ 部分：{scored}/{planned} 已评分，{missing} 个没有预测",
                         "en": "⚠️ partial: {scored}/{planned} scored, {missing} without a prediction"},
    "hidden_tag": {"zh": "（已隐藏）", "en": " (hidden)"},
}

DANGER = {"zh": {"high": "高", "medium": "中", "low": "低"}, "en": {"high": "high", "medium": "medium", "low": "low"}}
OBJECT = {"zh": {"pedestrian": "行人", "cyclist": "骑车人", "motorcycle": "摩托车/电动车", "vehicle": "车辆",
                 "animal": "动物", "other": "其他", "none": "无"},
          "en": {"pedestrian": "pedestrian", "cyclist": "cyclist", "motorcycle": "motorcycle / e-bike",
                 "vehicle": "vehicle", "animal": "animal", "other": "other", "none": "none"}}

# English sentences written by the backend (errors, engine reasons, cost reasons) → Chinese. The
# first pattern that matches the whole sentence wins; named groups are carried over verbatim.
# Keep the English message in the backend (the CLI and the API speak English); add a line here.
TRANSLATIONS: list[tuple[str, str]] = [
    # endpoint contract (engines/cloud/contract.py ContractError), alone or quoted by the endpoint engines;
    # first, so the generic video / file patterns below do not take these sentences
    (r"The Azure ML endpoint at (?P<h>\S+) answered HTTP (?P<c>\d+): (?P<why_item>.+?)\.?",
     "Azure ML 端点 {h} 返回 HTTP {c}：{why_item}"),
    (r"SageMaker endpoint (?P<n>\S+) failed: (?P<why_item>.+?)\.?", "SageMaker 端点 {n} 调用失败：{why_item}"),
    (r"video\.frames must be a non-empty list of base64 JPEG or PNG images\.?",
     "video.frames 必须是非空的 base64 JPEG 或 PNG 图片列表。"),
    (r"video\.frames holds (?P<n>\d+) frames; at most (?P<m>\d+) are accepted\.?",
     "video.frames 有 {n} 帧，最多只接受 {m} 帧。"),
    (r"video\.frames\[(?P<i>\d+)\] is not a base64 JPEG or PNG image\.?", "video.frames[{i}] 不是 base64 JPEG 或 PNG 图片。"),
    (r"video\.frames must all have the same size\.?", "video.frames 中的图片必须大小相同。"),
    (r"video\.timestamps_s must have one time per frame\.?", "video.timestamps_s 必须每帧对应一个时间。"),
    (r"video\.uri answered HTTP (?P<c>\d+)\.?", "video.uri 返回 HTTP {c}。"),
    (r"video\.uri could not be read as a video \((?P<why>.*)\)\.?", "video.uri 无法作为视频读取（{why}）。"),
    (r"The request is not JSON \((?P<why>.*)\)\.?", "请求不是 JSON（{why}）。"),
    (r"The request must be a JSON object\.?", "请求必须是一个 JSON 对象。"),
    (r"This endpoint speaks (?P<a>\S+), not (?P<b>.*?)\.?", "这个端点使用的协议是 {a}，不是 {b}。"),
    (r"messages must be a non-empty list of \{role: system\|user\|assistant, content: text\}\.?",
     "messages 必须是非空列表，每项为 {{role: system|user|assistant, content: 文本}}。"),
    (r"options takes only (?P<names>.+?)\.?", "options 只接受 {names}。"),
    (r"Bad options \((?P<why>.*)\)\.?", "options 无效（{why}）。"),
    (r"video must be \{frames, timestamps_s, …\}, \{uri, sampling\} or null\.?",
     "video 必须是 {{frames, timestamps_s, …}}、{{uri, sampling}} 或 null。"),
    # labels
    (r"Label set '(?P<name>.+)' already exists; choose another name or replace it explicitly\.",
     "标签集“{name}”已存在：请换一个名称，或勾选“覆盖同名标签集”。"),
    (r"Label set '(?P<name>.+)' does not exist\.", "标签集“{name}”不存在。"),
    (r"Label file (?P<p>.+) does not exist\.", "标签文件 {p} 不存在。"),
    (r"Label file (?P<p>.+) is empty\.", "标签文件 {p} 是空的。"),
    (r"(?P<p>.+) is not a text CSV file\.", "{p} 不是文本 CSV 文件。"),
    (r"(?P<p>.+) is not UTF-8 or GB18030 text\.", "{p} 不是 UTF-8 或 GB18030 编码的文本。"),
    (r"(?P<p>.+) has (?P<n>\d+) bad rows?, so nothing was imported: (?P<rows_items>.+?)\.?",
     "{p} 有 {n} 行有误，整份文件都没有导入：{rows_items}。"),
    # one bad row of a label file (inside the sentence above)
    (r"row (?P<n>\d+): (?P<why_item>.+)", "第 {n} 行：{why_item}"),
    (r"label '(?P<v>.*)' is not none, '<t>s: ghost probing' or '<t>s: cut-in'",
     "标签“{v}”不是 none、'<t>s: ghost probing' 或 '<t>s: cut-in'"),
    (r"the label is empty", "标签为空"),
    (r"video_id is empty", "video_id 为空"),
    (r"video (?P<v>.+) is listed twice \(also row (?P<n>\d+)\)", "视频 {v} 出现了两次（另见第 {n} 行）"),
    (r"ghost_probing '(?P<v>.*)' is not 1/0, true/false, yes/no or 是/否", "ghost_probing “{v}”不是 1/0、true/false、yes/no 或 是/否"),
    (r"onset_s '(?P<v>.*)' is not a number of seconds", "onset_s “{v}”不是秒数"),
    (r"onset_s must be a non-negative number of seconds", "onset_s 必须是非负的秒数"),
    (r"kind '(?P<v>.*)' contradicts ghost_probing=1", "kind “{v}”与 ghost_probing=1 矛盾"),
    (r"and (?P<n>\d+) more", "另有 {n} 行"),
    (r"(?P<p>.+) has a header but no label rows\.", "{p} 只有表头，没有标签行。"),
    (r"(?P<p>.+) has no video_id column; expected a header such as (?P<a>\S+) or (?P<b>\S+)\.",
     "{p} 没有 video_id 列：表头应类似 {a} 或 {b}。"),
    (r"(?P<p>.+) has neither a ground_truth_label nor a ghost_probing column\.",
     "{p} 既没有 ground_truth_label 列，也没有 ghost_probing 列。"),
    (r"A label set name needs 1–64 letters, digits, Chinese characters or - _ \. @ \+\.",
     "标签集名称需要 1–64 个字母、数字、汉字或 - _ . @ +。"),
    (r"No video in the library has a DADA file name \(images_<category>_<clip>\), so the preset labels nothing\.",
     "视频库中没有 DADA 命名的视频（images_<类别>_<编号>），预设不会标注任何视频。"),
    (r"Unknown label set '(?P<name>.+)'; known label sets: (?P<known>.+)\.",
     "未知的标签集“{name}”；已有的标签集：{known}。"),
    # library / video
    (r"(?P<p>.+) is outside the library folders, so it cannot be opened\.", "{p} 不在视频库目录中，不能打开。"),
    (r"(?P<p>.+) does not exist in the library\.", "{p} 在视频库中不存在。"),
    (r"(?P<p>.+) is not a video the library can read\.", "{p} 不是视频库能读取的视频。"),
    (r"(?P<p>.+) is not a video file this library accepts \((?P<ext>.+)\)\.",
     "{p} 不是视频库接受的视频文件（{ext}）。"),
    (r"(?P<p>.+) is (?P<mb>\d+) MB, over the upload limit of (?P<lim>[\d.]+) MB \(set GHOSTPROBE_MAX_UPLOAD_MB to change it\)\.",
     "{p} 有 {mb} MB，超过上传上限 {lim} MB（可用 GHOSTPROBE_MAX_UPLOAD_MB 修改）。"),
    (r"The upload (?P<p>.+) did not arrive; please try again\.", "上传的 {p} 没有收到，请重试。"),
    (r"Video (?P<v>.+) is not in the library\.", "视频 {v} 不在视频库中。"),
    (r"\"(?P<p>.+)\" is not a video that can be read: its format is unknown or its header is damaged\.",
     "“{p}”不是可读取的视频：格式未知或文件头已损坏。"),
    (r"\"(?P<p>.+)\" is empty \(0 bytes\), so it is not a video\.", "“{p}”是空文件（0 字节），不是视频。"),
    (r"\"(?P<p>.+)\" looks like a video but cannot be opened: it is truncated or corrupt\.",
     "“{p}”看起来是视频，但打不开：文件被截断或已损坏。"),
    (r"\"(?P<p>.+)\" contains no readable video stream, so there are no frames to read\.", "“{p}”中没有可读取的视频流。"),
    (r"\"(?P<p>.+)\" is a still image, not a video\.", "“{p}”是静态图片，不是视频。"),
    (r"\"(?P<p>.+)\" uses a video codec that cannot be decoded here\.", "“{p}”使用的视频编码在这里无法解码。"),
    (r"\"(?P<p>.+)\" contains no video frames\.", "“{p}”中没有视频帧。"),
    (r"\"(?P<p>.+)\" is corrupt: (?P<rest>.+)", "“{p}”已损坏，无法解码。"),
    (r"Cannot find \"(?P<p>.+)\": no such file or folder\.", "找不到“{p}”：没有这个文件或文件夹。"),
    (r"Cannot read \"(?P<p>.+)\": permission denied\.", "无法读取“{p}”：没有权限。"),
    (r"Cannot read \"(?P<p>.+)\"(?P<rest>.*)", "无法读取“{p}”。"),
    # runs
    (r"A run named '(?P<name>.+)' already exists \((?P<id>.+)\); choose another name\.",
     "已有名为“{name}”的运行（{id}），请换一个名称。"),
    (r"No run has the id or name '(?P<ref>.*)'; `ghostprobe runs list` shows them\.", "没有 id 或名称为“{ref}”的运行。"),
    (r"Run (?P<id>\S+) has no prediction for (?P<v>.+)\.", "运行 {id} 没有视频 {v} 的预测。"),
    (r"Run (?P<id>\S+) was imported from a file; there is nothing to resume\.", "运行 {id} 是从文件导入的，没有可继续的部分。"),
    (r"Run (?P<id>\S+) used (?P<what>.+) '(?P<a>.*)', not '(?P<b>.*)'; resume it as it was\.",
     "运行 {id} 使用的 {what} 是“{a}”，不是“{b}”；请按原设置继续。"),
    # costs
    (r"Cost unknown: the price of (?P<loc>.+) is not set \(`ghostprobe prices set`\)\.",
     "成本未知：没有设置 {loc} 的价格（在“价格目录”里设置，或用 `ghostprobe prices set`）。"),
    (r"Cost unknown: (?P<m>\d+) of (?P<n>\d+) model calls have no measured latency\.",
     "成本未知：{n} 次模型调用中有 {m} 次没有测得延迟。"),
    (r"Cost unknown: (?P<m>\d+) of (?P<n>\d+) model calls have no token counts\.",
     "成本未知：{n} 次模型调用中有 {m} 次没有 token 数。"),
    (r"Cost unknown: the run has no predictions yet\.", "成本未知：该运行还没有预测。"),
    (r"Cost unknown: the run has no location.*", "成本未知：该运行没有记录运行位置（location），无法对应价格。"),
    (r"Cost unknown: no price for (?P<loc>.+?)\.?", "成本未知：价格目录中没有 {loc} 的价格。"),
    # engines
    (r"ready: weights-free motion detector on CPU", "可用：不需要权重的运动检测器，在 CPU 上运行"),
    (r"ready: weights-free independent-motion map on CPU", "可用：不需要权重的独立运动图，在 CPU 上运行"),
    (r"configured, not yet contacted: (?P<ep>.+), model (?P<m>.+), video as (?P<vm>\w+)\.",
     "已配置，尚未连接：{ep}，模型 {m}，视频以 {vm} 方式发送。"),
    (r"Not configured: set GHOSTPROBE_OPENAI_BASE_URL \(e\.g\. a vLLM server\) or GHOSTPROBE_OPENAI_API_KEY\.",
     "未配置：请设置 GHOSTPROBE_OPENAI_BASE_URL（例如一台 vLLM 服务器）或 GHOSTPROBE_OPENAI_API_KEY。"),
    (r"Set GHOSTPROBE_OPENAI_MODEL \(e\.g\. gpt-4o\) to use api\.openai\.com\.",
     "使用 api.openai.com 需要设置 GHOSTPROBE_OPENAI_MODEL（例如 gpt-4o）。"),
    (r"No model configured: set GHOSTPROBE_HF_MODEL to a model id or local folder\.",
     "未配置模型：请把 GHOSTPROBE_HF_MODEL 设为模型 id 或本地目录。"),
    (r"No worker configured: set GHOSTPROBE_VIDEOLLAMA2_URL to the address of (?P<w>\S+) \(e\.g\. (?P<u>\S+)\)\.",
     "未配置工作进程：请把 GHOSTPROBE_VIDEOLLAMA2_URL 设为 {w} 的地址（例如 {u}）。"),
    (r"AI-VAD needs fitted artifacts: set GHOSTPROBE_AIVAD_ARTIFACTS or pass --artifacts \(make them with `ghostprobe vad fit`\)\.",
     "AI-VAD 需要拟合好的模型文件：请设置 GHOSTPROBE_AIVAD_ARTIFACTS 或传入 --artifacts（用 `ghostprobe vad fit` 生成）。"),
    (r"The openai engine needs the openai package: pip install (?P<pkg>.+?)\.?", "openai 引擎需要 openai 包：pip install {pkg}。"),
    (r"The transformers engine needs torch and transformers: pip install (?P<pkg>.+?)\.?",
     "transformers 引擎需要 torch 和 transformers：pip install {pkg}。"),
    (r"The (?P<e>\w+) engine needs (?P<what>.+?): pip install (?P<pkg>.+)", "{e} 引擎需要 {what}：pip install {pkg}"),
    (r"The model folder (?P<p>.+) does not exist\.", "模型目录 {p} 不存在。"),
    (r"The model folder (?P<p>.+) has no config\.json(?P<rest>.*)", "模型目录 {p} 中没有 config.json。"),
    (r"Model (?P<m>.+) is not in the local Hugging Face cache and downloads are off(?P<rest>.*)",
     "模型 {m} 不在本地 Hugging Face 缓存中，且未允许下载（GHOSTPROBE_ALLOW_DOWNLOAD=1 允许下载）。"),
    (r"Availability check failed: (?P<e>.+)", "可用性检查失败：{e}"),
    (r"torch cannot start here: (?P<e>.+)", "torch 无法在此启动：{e}"),
    # config
    (r"GHOSTPROBE_MAX_UPLOAD_MB must be a number of megabytes, such as 500\.",
     "GHOSTPROBE_MAX_UPLOAD_MB 必须是兆字节数，例如 500。"),
    (r"GHOSTPROBE_AUTH must look like user:password\.", "GHOSTPROBE_AUTH 必须形如 user:password。"),
    (r"Cannot create (?P<p>.+): (?P<a>.+) is a file, not a folder\.", "无法创建 {p}：{a} 是文件，不是文件夹。"),
    (r"Azure ML could not (?P<what>.+?): not found \(HTTP 404\): check the workspace, compute and job name\.",
     "Azure ML 无法完成（{what}）：找不到（HTTP 404）：请检查工作区、计算资源和任务名称。"),
]
# Catch-alls, tried after every exact sentence (TRANSLATIONS, then webapp.messages_zh.BACKEND_ZH).
GENERIC: list[tuple[str, str]] = [
    (r"(?P<p>.+?):? (is|looks) (empty|corrupt|truncated|not a video)(?P<rest>.*)",
     "{p} 无法作为视频读取（空文件、损坏、截断或不是视频）。"),
    (r"ready(?P<rest>.*)", "可用{rest}"),
    (r"Cost unknown: (?P<why>.+)", "成本未知：{why}"),
    (r"(?P<e>[\w-]+) needs (?P<what>.+?): set (?P<var>GHOSTPROBE_\w+)(?P<rest>.*)", "{e} 需要 {what}：请设置 {var}。"),
    (r"Not configured: set (?P<var>GHOSTPROBE_\w+)(?P<rest>.*)", "未配置：请设置 {var}。"),
    (r"Set (?P<var>GHOSTPROBE_\w+) (?P<rest>.+)", "请设置 {var}。"),
    (r"(?P<var>GHOSTPROBE_\w+) must (?P<rest>.+)", "{var} 的值无效：{rest}"),
    (r"(?P<e>.+) (cannot|can't|does not) (chat|answer chat).*", "{e} 不能对话。"),
    (r"(?P<rest>.+) asks the same as (?P<ref>.+)", "内容与 {ref} 相同，没有保存新版本（{rest}）。"),
    # a path, then what is wrong with it (reports.run_folder's phrases, in BACKEND_ZH)
    (r"(?P<p>.+?) (?P<why_item>(?:is not a|has|answers) .+)\.", "{p} {why_item}。"),
]


def _backend_pattern(english: str, chinese: str) -> tuple[str, str]:
    """A BACKEND_ZH entry as a (regex, template) pair: each ``{}`` of the English becomes a group v0, v1, …
    (any text; ``{+}``: a phrase translated on its own; ``{what}``/``{kind}``: a word of WHAT_ZH/KIND_ZH), and ``{0}``, ``{1}``, … of the Chinese refer to them."""
    import string

    from webapp.messages_zh import KIND_ZH, WHAT_ZH

    fmt = string.Formatter()
    rx, names = [], []
    for lit, field, _, _ in fmt.parse(english):
        rx.append(re.escape(lit))
        if field is None:
            continue
        if field in ("what", "kind"):  # one of a few words, translated from WHAT_ZH / KIND_ZH
            names.append(f"v{len(names)}_{field}")
            words = sorted(WHAT_ZH if field == "what" else KIND_ZH, key=len, reverse=True)
            rx.append(f"(?P<{names[-1]}>" + "|".join(map(re.escape, words)) + ")")
        else:  # "{+}": a phrase that is itself translated
            names.append(f"v{len(names)}" + ("_item" if field == "+" else ""))
            rx.append(f"(?P<{names[-1]}>.+?)")
    if not english.endswith((".", "?", "!")):
        rx.append(r"\.?")  # engines.errors.sentence() ends every message with a full stop
    zh = []
    for lit, field, _, _ in fmt.parse(chinese):
        zh.append(lit.replace("{", "{{").replace("}", "}}"))
        if field is not None:
            zh.append("{" + names[int(field)] + "}")
    return "".join(rx), "".join(zh)


def _compiled() -> list[tuple[re.Pattern, str]]:
    from webapp.messages_zh import BACKEND_ZH, PHRASES_ZH

    def specific_first(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The most fixed text first, a fixed start counting twice ("A prediction record {+}." before
        "{} has a {} that is not text.")."""
        def fixed(english: str) -> int:
            return len(re.sub(r"\{[^{}]*\}", "", english)) + len(english.split("{", 1)[0])

        return [_backend_pattern(e, z) for e, z in sorted(pairs, key=lambda ez: -fixed(ez[0]))]

    return [(re.compile(p + r"\Z", re.S), z)
            for p, z in [*TRANSLATIONS, *specific_first(BACKEND_ZH), *GENERIC, *specific_first(PHRASES_ZH)]]


_COMPILED = _compiled()


def add_messages(entries: dict[str, dict[str, str]]) -> None:
    """Tabs register their own run-time strings: ``add_messages({"key": {"zh": ..., "en": ...}})``."""
    for k, v in entries.items():
        if "zh" not in v or "en" not in v:
            raise KeyError(f"message {k} needs both zh and en")
    CATALOGUE.update(entries)


def add_error_translations(pairs: list[tuple[str, str]]) -> None:
    """More backend sentences to translate: (regex of the English sentence, Chinese template)."""
    for p, z in pairs:  # after TRANSLATIONS' exact sentences, before the backend's list and the catch-alls
        _COMPILED.insert(len(TRANSLATIONS), (re.compile(p + r"\Z", re.S), z))


def lang_of(request: Any = None) -> str:
    """``zh`` or ``en`` from the request's Accept-Language (first preference); ``zh`` without one."""
    if request is None:
        return "zh"
    headers = getattr(request, "headers", None) or {}
    try:
        al = headers.get("accept-language") or headers.get("Accept-Language") or ""
    except Exception:
        al = ""
    first = str(al).split(",")[0].strip().lower()
    if not first:
        return "zh"
    return "zh" if first.startswith("zh") else "en"


def norm(lang: str | None) -> str:
    return lang if lang in LANGS else "zh"


def m(key: str, lang: str | None = "zh", **kw: Any) -> str:
    """A catalogue message in ``lang`` with ``kw`` filled in (no escaping)."""
    text = CATALOGUE[key][norm(lang)]
    return text.format(**kw) if kw else text


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-!|~>])")


def escape_md(text: Any) -> str:
    """Text made literal inside gr.Markdown: HTML-escaped, Markdown punctuation backslash-escaped,
    every line kept (line breaks become <br>)."""
    s = html.escape("" if text is None else str(text), quote=False)
    s = _MD_SPECIAL.sub(r"\\\1", s)
    lines = [ln for ln in s.splitlines()]
    return "<br>".join(lines) if len(lines) > 1 else s


def md(key: str, lang: str | None = "zh", **kw: Any) -> str:
    """A catalogue message for gr.Markdown: every interpolated value escaped."""
    return m(key, lang, **{k: v if isinstance(v, (int, float)) and not isinstance(v, bool) else escape_md(v)
                           for k, v in kw.items()})


def translate(text: str, lang: str | None = "zh") -> str:
    """A backend sentence in ``lang``: English stays; for Chinese, the whole text, else each sentence of it,
    matched against TRANSLATIONS (a sentence nobody translated yet stays as written)."""
    if norm(lang) == "en" or not text:
        return text
    whole = _translate_line(str(text))
    if whole is not None:
        return whole
    parts = re.split(r"(?<=[.;])\s+(?=[A-Z`'\"])", str(text).strip())
    return " ".join(_translate_line(p) or p for p in parts)


def _translate_line(line: str) -> str | None:
    s = line.strip()
    for rx, zh in _COMPILED:
        mm = rx.match(s)
        if mm:
            vals = {}
            for k, v in mm.groupdict().items():
                v = v or ""
                if k.endswith("_items"):  # a list of "; "-separated items, each translated on its own
                    v = "；".join(_translate_line(x) or x for x in v.split("; "))
                elif k.endswith("_item"):
                    v = _translate_line(v) or v
                elif k.endswith(("_what", "_kind")):
                    from webapp.messages_zh import KIND_ZH, WHAT_ZH

                    v = (WHAT_ZH if k.endswith("_what") else KIND_ZH).get(v, v)
                vals[k] = v
            return zh.format(**vals)
    return None


def error_text(e: BaseException | str, lang: str | None = "zh") -> str:
    """The whole message of an error (every sentence, credentials removed: engines.errors.format_error),
    in ``lang``."""
    from engines.errors import format_error, sentence
    from engines.redact import redact

    s = format_error(e) if isinstance(e, BaseException) else sentence(redact(str(e)))
    return translate(s, lang)


def status(text: str, ok: bool = True) -> str:
    """A status line for gr.Markdown; ``text`` is already markup-safe (built with ``md``)."""
    return ("✅ " if ok else "⚠️ ") + text


def error_md(e: BaseException | str, lang: str | None = "zh") -> str:
    """⚠️ + the whole error, translated and escaped, for gr.Markdown."""
    return "⚠️ " + escape_md(error_text(e, lang))


def danger(v: Any, lang: str | None = "zh") -> str:
    if v is None or v == "":
        return m("none_given", lang)
    return DANGER[norm(lang)].get(str(v), str(v))


def object_type(v: Any, lang: str | None = "zh") -> str:
    if v is None or v == "":
        return m("none_given", lang)
    return OBJECT[norm(lang)].get(str(v), str(v))


def badge(row: dict[str, Any] | None, lang: str | None = "zh") -> str:
    """The label badge of a label row (reports.labels.label_badge, in either language)."""
    if not row:
        return m("badge_none_label", lang)
    weak = m("weak_suffix", lang) if row.get("weak") else ""
    t = f" {row['onset_s']:g}s" if row.get("onset_s") is not None else ""
    if row.get("kind") == "ghost_probing":
        return m("badge_gp", lang, t=t, weak=weak)
    if row.get("kind") == "cut_in":
        return m("badge_cut_in", lang, t=t, weak=weak)
    return m("badge_no", lang, weak=weak)


def status_name(s: str | None, lang: str | None = "zh") -> str:
    key = f"status_{s}"
    return m(key, lang) if key in CATALOGUE else str(s or "")


def coverage(r: dict[str, Any], lang: str | None = "zh") -> str:
    """``scored/planned`` of a run row (reports.runs keys planned/scored/missing; fallbacks for older rows)."""
    planned, scored, missing = coverage_counts(r)
    if planned is None:
        return "—"
    if missing:
        return m("coverage_partial", lang, scored=scored, planned=planned, missing=missing)
    return m("coverage", lang, scored=scored, planned=planned)


def coverage_counts(r: dict[str, Any]) -> tuple[int | None, int, int]:
    """(planned, scored, not answered) of a reports.runs row (planned, scored, not_predicted); planned None
    when the row carries no coverage."""
    planned = r.get("planned")
    if planned is None:
        return None, 0, 0
    scored = int(r.get("scored") or 0)
    left = r.get("not_predicted")
    left = int(left) if left is not None else max(int(planned) - int(r.get("predictions") or 0), 0)
    return int(planned), scored, left


def run_status(r: dict[str, Any], lang: str | None = "zh") -> str:
    """A run's status as shown: ``partial`` when a planned video has no prediction."""
    s = r.get("status") or ""
    _, _, missing = coverage_counts(r)
    if missing and s in ("done", "imported"):  # rows written before runs knew their coverage
        s = "partial"
    return status_name(s, lang)
