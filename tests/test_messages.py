"""webapp.messages: the language of a request, escaping, whole and translated error sentences, badges, coverage."""

from __future__ import annotations

import pytest

from webapp import messages as msg


class _Req:
    def __init__(self, al):
        self.headers = {"accept-language": al} if al is not None else {}


@pytest.mark.parametrize("al, lang", [("zh-CN,zh;q=0.9,en;q=0.8", "zh"), ("zh-TW", "zh"), ("en-US,en;q=0.9", "en"),
                                      ("de-DE,zh;q=0.5", "en"), ("", "zh"), (None, "zh")])
def test_language_of_a_request(al, lang):
    assert msg.lang_of(_Req(al)) == lang
    assert msg.lang_of(None) == "zh"


def test_escape_keeps_tags_and_markdown_literal_and_every_line():
    s = msg.escape_md("label '<t>s: ghost probing' *not* [x](y)\nsecond line")
    assert "<t>" not in s and "&lt;t&gt;s" in s and "\\*not\\*" in s and "\\[x\\]\\(y\\)" in s
    assert s.endswith("second line") and "<br>" in s


def test_error_is_whole_translated_and_escaped():
    from reports.labels import LabelError

    e = LabelError("x.csv has 2 bad rows, so nothing was imported: row 2: label 'maybe' is not none, "
                   "'<t>s: ghost probing' or '<t>s: cut-in'; row 3: video_id is empty.")
    zh = msg.error_text(e, "zh")
    assert zh == ("x.csv 有 2 行有误，整份文件都没有导入：第 2 行：标签“maybe”不是 none、'<t>s: ghost probing' 或 "
                  "'<t>s: cut-in'；第 3 行：video_id 为空。")
    en = msg.error_md(e, "en")
    assert en.startswith("⚠️ ") and "&lt;t&gt;s: ghost probing" in en and "row 3: video\\_id is empty" in en
    assert msg.error_text(LabelError("Label set 'demo' already exists; choose another name or replace it "
                                     "explicitly."), "zh") == "标签集“demo”已存在：请换一个名称，或勾选“覆盖同名标签集”。"


def test_backend_sentences_in_chinese():
    assert msg.translate("Cost unknown: the price of local:local-cpu is not set (`ghostprobe prices set`).", "zh") \
        .startswith("成本未知：没有设置 local:local-cpu 的价格")
    assert msg.translate("No model configured: set GHOSTPROBE_HF_MODEL to a model id or local folder.", "zh") == \
        "未配置模型：请把 GHOSTPROBE_HF_MODEL 设为模型 id 或本地目录。"
    assert msg.translate("anything at all", "en") == "anything at all"


def test_every_engine_reason_reads_in_chinese():
    import re

    from engines.registry import engine_status

    for r in engine_status():
        if r["name"] not in ("baseline", "motion", "openai", "transformers", "videollama2", "aivad"):
            continue  # an engine added later brings its own line in TRANSLATIONS
        zh = msg.translate(r["reason"], "zh")
        assert re.search(r"[\u4e00-\u9fff]", zh), (r["name"], r["reason"], zh)


def test_badges_labels_and_coverage_in_both_languages():
    row = {"kind": "ghost_probing", "onset_s": 2.5, "weak": True}
    assert msg.badge(row, "zh") == "鬼探头 2.5s（弱）" and msg.badge(row, "en") == "ghost probing 2.5s (weak)"
    assert msg.badge(None, "en") == "unlabelled" and msg.badge({"kind": "cut_in"}, "zh") == "加塞(非鬼探头)"
    assert msg.danger("medium", "zh") == "中" and msg.object_type("vehicle", "zh") == "车辆"
    assert msg.danger("medium", "en") == "medium" and msg.object_type(None, "en") == "— (not given)"
    full = {"planned": 12, "scored": 12, "not_predicted": 0, "status": "done"}
    part = {"planned": 12, "scored": 9, "not_predicted": 3, "status": "partial"}
    assert msg.coverage(full, "en") == "12/12 scored" and msg.run_status(full, "zh") == "完成"
    assert msg.coverage(part, "zh") == "⚠️ 部分：9/12 已评分，3 个没有预测" and msg.run_status(part, "en") == "partial"
    assert msg.coverage({"status": "done"}, "zh") == "—"


def test_catalogue_is_complete():
    import webapp.tabs.library  # noqa: F401  (registers its messages)
    import webapp.tabs.prompt_lab  # noqa: F401
    import webapp.tabs.reports  # noqa: F401

    for k, v in msg.CATALOGUE.items():
        assert set(v) >= {"zh", "en"} and v["zh"] and v["en"], k
    with pytest.raises(KeyError):
        msg.add_messages({"x": {"zh": "只有中文"}})
