"""engines.verdict: model text → Verdict. The rule under test: an unreadable answer is never a "no"."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engines.types import DANGER_LEVELS, OBJECT_TYPES, VERDICT_STATUSES, Verdict
from engines.verdict import ANSWER_SCHEMA_EN, ANSWER_SCHEMA_ZH, CONFIDENCE_WORDS, parse, verdict_from_dict

FIELDS = ("ghost_probing", "confidence", "danger_level", "object_type", "onset_s", "reason", "status")


def fields(v: Verdict) -> dict:
    d = v.to_dict()
    return {k: d[k] for k in FIELDS}


# ---------------------------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------------------------

FENCED_ZH = """```json
{"是否鬼探头": "是", "置信度": 0.87, "危险等级": "高", "目标类型": "行人", "出现时间": "2.5秒", "理由": "行人从公交车后突然冲出，距离很近"}
```"""


def test_fenced_chinese_json():
    v = parse(FENCED_ZH)
    assert fields(v) == {"ghost_probing": True, "confidence": 0.87, "danger_level": "high", "object_type": "pedestrian",
                         "onset_s": 2.5, "reason": "行人从公交车后突然冲出，距离很近", "status": "ok"}
    assert v.raw == FENCED_ZH


def test_full_width_punctuation_and_trailing_comma_in_prose():
    text = "分析：左侧停着公交车。\n结论：｛“是否鬼探头”：“否”，“置信度”：“87%”，“危险等级”：“低”，“目标类型”：“无”，“出现时间”：null，“理由”：“没有遮挡物，目标全程可见”，｝谢谢。"
    v = parse(text)
    assert fields(v) == {"ghost_probing": False, "confidence": 0.87, "danger_level": "low", "object_type": None,
                         "onset_s": None, "reason": "没有遮挡物，目标全程可见", "status": "ok"}


def test_python_style_dict_single_quotes():
    v = parse("{'ghost_probing': True, 'confidence': 87, 'danger_level': 'medium', 'object_type': 'bicycle', "
              "'onset': '00:02.5', 'reason': None,}")
    assert fields(v) == {"ghost_probing": True, "confidence": 0.87, "danger_level": "medium", "object_type": "cyclist",
                         "onset_s": 2.5, "reason": "", "status": "ok"}


def test_step_by_step_answer_takes_the_final_json():
    text = """第一步 场景：城市道路，本车直行。
第二步 遮挡物：右侧停着一辆白色面包车，例如 {"是否鬼探头": "否"} 这样的格式只是举例。
第三步 出现：一名骑电动车的人从面包车后方冲出。
第四步 时间：约 3.2 秒开始露出。

```json
{"是否鬼探头": "是", "置信度": "高", "危险等级": "高", "目标类型": "骑电动车的人", "出现时间": "3.2s", "理由": "电动车从面包车后冲出"}
```"""
    v = parse(text)
    assert (v.ghost_probing, v.confidence, v.object_type, v.onset_s, v.status) == (True, 0.9, "motorcycle", 3.2, "ok")


def test_nested_and_english_keys():
    v = parse('Result: {"answer": {"is_ghost_probing": "yes", "confidence": "0.7", "Danger Level": "HIGH"}}')
    assert (v.ghost_probing, v.confidence, v.danger_level, v.status) == (True, 0.7, "high", "ok")


def test_unescaped_inner_quotes_survive():
    v = parse('{"ghost_probing": false, "reason": "司机说"小心"了"}')
    assert (v.ghost_probing, v.reason) == (False, '司机说"小心"了')


def test_key_value_lines():
    v = parse("**是否鬼探头**：是\n- 置信度: 中\n- 目标类型：电动车\n- 出现时间：约3秒\n- 理由：从货车后冲出")
    assert fields(v) == {"ghost_probing": True, "confidence": 0.6, "danger_level": None, "object_type": "motorcycle",
                         "onset_s": 3.0, "reason": "从货车后冲出", "status": "ok"}


def test_key_value_lines_that_disagree_stay_unparsed():
    v = parse("是否鬼探头：是\n……\n是否鬼探头：否")
    assert v.status == "unparsed" and v.ghost_probing is None


@pytest.mark.parametrize("text, expected", [
    ("是", True), ("是。", True), ("有", True), ("存在鬼探头", True), ("是，有鬼探头", True), ("ghost probing", True),
    ("Yes", True), ("This is a ghost probing event.", True), ("答案：是", True),
    ("否", False), ("否，没有鬼探头", False), ("没有鬼探头。", False), ("不存在", False), ("no ghost probing", False),
    ("No ghost probing.", False), ("不是鬼探头", False), ("No", False),
])
def test_single_line_answers(text, expected):
    v = parse(text)
    assert (v.ghost_probing, v.status, v.raw) == (expected, "ok", text)


@pytest.mark.parametrize("text", [
    "", "   ", "可能是鬼探头", "是，但不确定", "有鬼探头吗？没有", "是，没有鬼探头", "maybe ghost probing",
    "Probably no ghost probing.", "视频中一辆车正常行驶。", "0", "1", "是否", "是/否",
    "是\n否", "The video shows a street.", "不确定", "无法判断", "鬼探头：指行人从遮挡物后突然出现",
    '{"是否鬼探头": "是/否"}', '{"是否鬼探头": "不确定", "置信度": 0.5}', '{"ghost_probing": null}',
    '{"confidence": 0.9}', "{broken json", ANSWER_SCHEMA_ZH, ANSWER_SCHEMA_EN, f"```json\n{ANSWER_SCHEMA_ZH}\n```",
])
def test_hedged_mixed_or_empty_answers_stay_unparsed(text):
    v = parse(text)
    assert v.status == "unparsed"
    assert v.ghost_probing is None
    assert v.raw == text


def test_unparsed_json_keeps_what_it_could_read():
    v = parse('{"是否鬼探头": "不确定", "置信度": 0.5, "理由": "画面太暗"}')
    assert (v.status, v.ghost_probing, v.confidence, v.reason) == ("unparsed", None, 0.5, "画面太暗")


@pytest.mark.parametrize("value, expected", [
    (0.87, 0.87), ("0.87", 0.87), ("87%", 0.87), ("87％", 0.87), (87, 0.87), ("87", 0.87), (1, 1.0), (0, 0.0),
    ("高", CONFIDENCE_WORDS["high"]), ("中", CONFIDENCE_WORDS["medium"]), ("低", CONFIDENCE_WORDS["low"]),
    ("high", 0.9), ("较高", 0.9), (True, None), (-0.2, None), (150, None), ("很多", None), (None, None),
])
def test_confidence_forms(value, expected):
    v = verdict_from_dict({"是否鬼探头": "是", "置信度": value})
    assert v.confidence == pytest.approx(expected) if expected is not None else v.confidence is None


@pytest.mark.parametrize("value, expected", [
    (2.5, 2.5), ("2.5", 2.5), ("2.5s", 2.5), ("2.5 s", 2.5), ("2.5秒", 2.5), ("约2.5秒", 2.5), ("第2.5秒", 2.5),
    ("00:02.5", 2.5), ("0:01:02", 62.0), ("2500ms", 2.5), (0, 0.0), ("null", None), ("无", None), (None, None),
    (-1, None), ("-1s", None), ("第3帧", None), ("frame 12", None), ("不知道", None), (True, None),
])
def test_onset_forms(value, expected):
    v = verdict_from_dict({"ghost_probing": True, "onset_s": value})
    assert v.onset_s == pytest.approx(expected) if expected is not None else v.onset_s is None


@pytest.mark.parametrize("value, expected", [
    ("行人", "pedestrian"), ("骑车人", "cyclist"), ("自行车", "cyclist"), ("摩托车", "motorcycle"),
    ("电动车", "motorcycle"), ("车辆", "vehicle"), ("汽车", "vehicle"), ("动物", "animal"), ("其他", "other"),
    ("pedestrian", "pedestrian"), ("Cyclist", "cyclist"), ("motorcycle", "motorcycle"), ("car", "vehicle"),
    ("一名行人", "pedestrian"), ("骑电动车的人", "motorcycle"), ("白色轿车", "vehicle"), ("三轮车", "other"),
    ("无", None), ("none", None), (None, None), ("行人/骑车人", None), ("行人 或 车辆", None),
])
def test_object_types(value, expected):
    v = verdict_from_dict({"ghost_probing": True, "object_type": value})
    assert v.object_type == expected


@pytest.mark.parametrize("value, expected", [
    ("高", "high"), ("中", "medium"), ("低", "low"), ("High", "high"), ("medium", "medium"), ("LOW", "low"),
    ("中等", "medium"), ("高风险", "high"), ("危险", None), (3, None), (None, None),
])
def test_danger_levels(value, expected):
    assert verdict_from_dict({"鬼探头": "有", "危险程度": value}).danger_level == expected


@pytest.mark.parametrize("value, expected", [
    ("是", True), ("否", False), ("有", True), ("无", False), ("存在", True), ("不存在", False), ("true", True),
    ("false", False), ("yes", True), ("no", False), (1, True), (0, False), ("1", True), ("0", False), (True, True),
    (False, False), ("是（行人从公交车后冲出）", True), ("否，这是车辆切入", False), ("是/否", None), ("不确定", None),
    ("可能是", None), (None, None), (0.5, None), ("", None), ([], None),
])
def test_ghost_values(value, expected):
    v = verdict_from_dict({"是否鬼探头": value})
    assert v.ghost_probing is expected
    assert v.status == ("ok" if expected is not None else "unparsed")


def test_verdict_from_dict_round_trips_canonical_dicts():
    v = Verdict(ghost_probing=False, confidence=0.25, danger_level="low", object_type="vehicle", onset_s=None,
                reason="切入", status="ok", raw="raw text")
    assert verdict_from_dict(v.to_dict()) == v
    err = Verdict.error("endpoint down", raw="x")
    back = verdict_from_dict(err.to_dict())
    assert (back.status, back.ghost_probing, back.raw) == ("error", None, "x")


def test_answer_schemas_are_json_with_every_verdict_field():
    from engines.verdict import _field_of

    for schema in (ANSWER_SCHEMA_ZH, ANSWER_SCHEMA_EN):
        keys = json.loads(schema).keys()
        assert {_field_of(k) for k in keys} == {"ghost_probing", "confidence", "danger_level", "object_type",
                                                "onset_s", "reason"}


def test_parse_is_fast_on_pathological_input():
    import time

    start = time.perf_counter()
    parse('{"a": "' * 2000 + "}" * 100)
    parse("{" * 20000)
    assert time.perf_counter() - start < 5


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

ZH_KEYS = {"ghost_probing": ["是否鬼探头", "鬼探头", "是否存在鬼探头"], "confidence": ["置信度", "可信度"],
           "danger_level": ["危险等级", "危险程度"], "object_type": ["目标类型", "对象类型"],
           "onset_s": ["出现时间", "开始时间"], "reason": ["理由", "原因"]}
EN_KEYS = {"ghost_probing": ["ghost_probing", "is_ghost_probing", "Ghost Probing"], "confidence": ["confidence"],
           "danger_level": ["danger_level", "risk_level"], "object_type": ["object_type", "object"],
           "onset_s": ["onset_s", "onset", "start_time"], "reason": ["reason", "explanation"]}
GHOST_WORDS = {True: ["是", "有", "存在", "true", "yes", "1"], False: ["否", "无", "不存在", "false", "no", "0"]}
DANGER_WORDS = {"high": ["高", "high", "High"], "medium": ["中", "medium"], "low": ["低", "low", "LOW"]}
OBJECT_WORDS = {"pedestrian": ["行人", "pedestrian"], "cyclist": ["骑车人", "自行车", "cyclist"],
                "motorcycle": ["摩托车", "电动车", "motorcycle"], "vehicle": ["车辆", "汽车", "vehicle"],
                "animal": ["动物", "animal"], "other": ["其他", "other"]}
REASON_CHARS = st.sampled_from(list("行人从公交车后方突然出现距离很近没有遮挡物车辆切入abcXYZ 019，。！"))
PROSE = st.sampled_from(["", "分析如下：\n", "Here is my answer:\n", "好的。根据视频内容判断：", "结论\n\n",
                         "第一步 场景：城市道路。\n第二步 遮挡物：停放车辆。\n"])
PROSE_AFTER = st.sampled_from(["", "\n以上。", "\nHope this helps.", "\n\n注：仅供参考"])

verdicts = st.fixed_dictionaries({
    "ghost_probing": st.booleans(),
    "confidence": st.none() | st.integers(0, 100).map(lambda i: i / 100),
    "danger_level": st.none() | st.sampled_from(DANGER_LEVELS),
    "object_type": st.none() | st.sampled_from(OBJECT_TYPES),
    "onset_s": st.none() | st.integers(0, 5999).map(lambda i: i / 10),
    "reason": st.text(REASON_CHARS, max_size=40).map(str.strip),
})


@st.composite
def serialized(draw):
    v = draw(verdicts)
    lang = draw(st.sampled_from(["zh", "en"]))
    keys = ZH_KEYS if lang == "zh" else EN_KEYS
    quote = draw(st.sampled_from(["json", "single", "fullwidth"]))
    omit_none = draw(st.booleans())

    def q(s: str) -> str:
        if quote == "json":
            return json.dumps(s, ensure_ascii=draw(st.booleans()))
        if quote == "single":
            return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return "“" + s + "”"

    def null() -> str:
        return draw(st.sampled_from(["null", "None"]))

    parts = []
    for name, value in v.items():
        if value is None:
            if omit_none:
                continue
            rendered = null()
        elif name == "ghost_probing":
            style = draw(st.sampled_from(["bool", "python", "word"]))
            if style == "bool":
                rendered = "true" if value else "false"
            elif style == "python":
                rendered = "True" if value else "False"
            else:
                rendered = q(draw(st.sampled_from(GHOST_WORDS[value])))
        elif name == "confidence":
            pct = round(value * 100)
            styles = ["float", "string", "percent"] + (["int"] if pct != 1 else [])
            style = draw(st.sampled_from(styles))
            rendered = {"float": repr(value), "string": q(repr(value)), "percent": q(f"{pct}%"), "int": str(pct)}[style]
        elif name == "danger_level":
            rendered = q(draw(st.sampled_from(DANGER_WORDS[value])))
        elif name == "object_type":
            rendered = q(draw(st.sampled_from(OBJECT_WORDS[value])))
        elif name == "onset_s":
            style = draw(st.sampled_from(["num", "s", "秒", "clock"]))
            if style == "num":
                rendered = repr(value)
            elif style == "clock":
                m, s = divmod(value, 60)
                rendered = q(f"{int(m):02d}:{s:04.1f}")
            else:
                rendered = q(f"{value}{style}")
        else:
            rendered = q(value)
        parts.append((q(draw(st.sampled_from(keys[name]))), rendered))

    order = draw(st.permutations(parts))
    if quote == "fullwidth":
        colon, comma, open_, close = "：", "，", "｛", "｝"
    else:
        colon, comma, open_, close = ":", ",", "{", "}"
    sep = comma + draw(st.sampled_from([" ", "\n  ", ""]))
    body = sep.join(f"{k}{colon} {val}" for k, val in order)
    if draw(st.booleans()):
        body += comma  # trailing comma
    obj = f"{open_}{body}{close}"
    if draw(st.booleans()):
        obj = f"```{draw(st.sampled_from(['json', '']))}\n{obj}\n```"
    text = draw(PROSE) + obj + draw(PROSE_AFTER)
    return v, text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(serialized())
def test_serialized_verdicts_round_trip(case):
    v, text = case
    got = parse(text)
    assert got.status == "ok"
    assert got.raw == text
    assert got.ghost_probing is v["ghost_probing"]
    if v["confidence"] is None:
        assert got.confidence is None
    else:
        assert got.confidence == pytest.approx(v["confidence"], abs=1e-9)
    assert got.danger_level == v["danger_level"]
    assert got.object_type == v["object_type"]
    if v["onset_s"] is None:
        assert got.onset_s is None
    else:
        assert got.onset_s == pytest.approx(v["onset_s"], abs=1e-6)
    assert got.reason == v["reason"]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_never_raises_and_never_invents_a_no(text):
    v = parse(text)
    assert isinstance(v, Verdict)
    assert v.raw == text
    assert v.status in VERDICT_STATUSES
    assert (v.status == "ok") == (v.ghost_probing is not None)
    if v.ghost_probing is False:
        assert NEGATION.search(text.replace("是否", ""))


NEGATION = re.compile(r"否|不|没|无|未|非|\bno\b|\bnot\b|\bfalse\b|\b0\b|\bn\b|negative|absent", re.I)
YES_MARK = re.compile(r"是|有|存在|发生|鬼探头|\byes\b|\btrue\b|ghost|\b1\b|\by\b|positive|detected|present|对|确认|属", re.I)
HEDGE = re.compile(r"可能|也许|或许|不确定|无法|疑似|似乎|好像|大概|maybe|possibly|probably|might|unclear|\?|？", re.I)

WORDS = st.sampled_from([
    "是", "否", "有", "没有", "无", "不是", "鬼探头", "存在", "不存在", "可能", "也许", "不确定", "行人", "车辆", "突然",
    "出现", "视频中", "一辆车", "ghost probing", "no", "yes", "not", "maybe", "the", "car", "pedestrian", "probably",
    "这是", "吗", "？", "，", "。", " ", "\n", "：", ":", "是否鬼探头", "置信度", "0.8", "高", "理由",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(WORDS, max_size=12).map("".join))
def test_plain_text_only_says_no_when_it_says_no(text):
    v = parse(text)
    assert v.raw == text
    if v.status == "ok":
        body = text.replace("是否", "")
        assert not HEDGE.search(body)
        if v.ghost_probing is False:
            assert NEGATION.search(body), text
        else:
            assert YES_MARK.search(body), text


@settings(max_examples=200, deadline=None)
@given(st.lists(WORDS, max_size=12).map("".join))
def test_mixed_yes_and_no_single_line_is_unparsed(text):
    # A one-line answer that holds both a clear yes clause and a clear no clause is never a verdict.
    text = f"是，{text}，否" if "\n" not in text and "：" not in text and ":" not in text else "是，否"
    assert parse(text).status == "unparsed"
