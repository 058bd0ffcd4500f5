"""From model text to a :class:`~engines.types.Verdict`.

``parse(text)`` reads what a video LLM answered to a ghost-probing (鬼探头) prompt. It never raises
and it never guesses: whenever no clear verdict can be read, the result is
``Verdict(status="unparsed", ghost_probing=None, raw=text)`` — an unreadable answer is *not* a "no".

What it reads, in order of preference:

1. A JSON-like object anywhere in the text (inside a ```json fence or embedded in prose). Every
   ``{`` starts a candidate; each is read by a lenient parser that accepts full-width punctuation
   (｛｝：，“”‘’［］), single quotes, trailing commas, ``//`` comments, bare words
   (``是``, ``高``, ``2.5s``) and Python literals (``True``/``False``/``None``). Keys may be Chinese or
   English (see ``KEY_ALIASES``). The candidate with a ghost-probing key and the most recognised
   keys wins; ties go to the one inside a fence, then to the last one (the final answer after any
   step-by-step reasoning). Text inside quoted strings is kept verbatim (a Chinese reason keeps
   its full-width commas).
2. ``key: value`` lines (``是否鬼探头：是`` / ``- **置信度**: 0.8``) when the ghost-probing key appears
   and all its occurrences agree.
3. A whole answer that is one short line and says only yes or only no (``是``, ``否，没有鬼探头``,
   ``ghost probing``, ``No ghost probing.``). Hedged (``可能``, ``maybe``, ``不确定``), mixed, or
   anything with an unrecognised clause stays unparsed.

Value conventions (documented, relied on by the reports):

- ``ghost_probing``: 是/有/存在/发生/true/yes/1 → True; 否/不是/无/没有/不存在/未发生/false/no/0 → False;
  anything else (``是/否``, ``不确定``, ``null``) → None, and the verdict is unparsed.
- ``confidence``: ``0.87`` / ``"0.87"`` → 0.87; ``87`` / ``"87%"`` → 0.87 (numbers in (1, 100] are
  percentages); words map to ``CONFIDENCE_WORDS``: 高/high → 0.9, 中/medium → 0.6, 低/low → 0.3.
- ``danger_level``: 高/中/低, high/medium/low (and a few synonyms) → "high"|"medium"|"low".
- ``object_type``: Chinese or English words → one of ``OBJECT_TYPES``; 无/none → None; an unknown
  single word → "other"; several kinds named at once (``行人/骑车人``) → None.
- ``onset_s``: ``2.5``, ``"2.5s"``, ``"2.5秒"``, ``"约2.5秒"``, ``"2500ms"``, ``"00:02.5"``,
  ``"0:01:02"``; frame numbers (``第3帧``) and negatives → None.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from engines.types import DANGER_LEVELS, OBJECT_TYPES, Verdict

__all__ = [
    "ANSWER_SCHEMA_ZH",
    "ANSWER_SCHEMA_EN",
    "CONFIDENCE_WORDS",
    "KEY_ALIASES",
    "parse",
    "verdict_from_dict",
]

# The JSON shape prompts ask for. The placeholders are descriptive on purpose: a model that
# echoes the schema verbatim yields an *unparsed* verdict, never a fabricated answer.
ANSWER_SCHEMA_ZH = """{
  "是否鬼探头": "是 或 否",
  "置信度": "0 到 1 之间的小数",
  "危险等级": "高 / 中 / 低",
  "目标类型": "行人 / 骑车人 / 摩托车 / 车辆 / 动物 / 其他 / 无",
  "出现时间": "目标开始从遮挡物后出现的时刻（秒，数字），没有则为 null",
  "理由": "一两句话说明判断依据"
}"""

ANSWER_SCHEMA_EN = """{
  "ghost_probing": "yes or no",
  "confidence": "a decimal between 0 and 1",
  "danger_level": "high / medium / low",
  "object_type": "pedestrian / cyclist / motorcycle / vehicle / animal / other / none",
  "onset_s": "the moment (seconds, a number) the object starts to emerge from behind the occluder, or null",
  "reason": "one or two sentences explaining the judgement"
}"""

CONFIDENCE_WORDS = {"high": 0.9, "medium": 0.6, "low": 0.3}


def _nk(key: str) -> str:
    """Normalise a key: lower case, drop spaces, underscores, hyphens and punctuation."""
    return re.sub(r"[\s_\-.:：*`'\"“”‘’()（）\[\]【】]+", "", str(key)).lower()


KEY_ALIASES: dict[str, tuple[str, ...]] = {
    "ghost_probing": (
        "是否鬼探头", "鬼探头", "是否存在鬼探头", "是否发生鬼探头", "是否有鬼探头", "有无鬼探头", "存在鬼探头",
        "鬼探头判断", "是否为鬼探头", "是否属于鬼探头", "鬼探头事件",
        "ghost_probing", "is_ghost_probing", "ghostprobing", "ghost_probe", "has_ghost_probing",
        "ghost_probing_detected", "ghostProbing", "isGhostProbing",
    ),
    "confidence": ("置信度", "可信度", "置信", "确信度", "信心", "confidence", "conf", "confidence_score"),
    "danger_level": (
        "危险等级", "危险程度", "危险级别", "风险等级", "风险程度", "危险性",
        "danger_level", "danger", "risk_level", "risk", "severity",
    ),
    "object_type": (
        "目标类型", "对象类型", "目标", "物体类型", "类型", "鬼探头对象", "出现目标", "目标物",
        "object_type", "object", "target", "target_type", "type", "objecttype",
    ),
    "onset_s": (
        "出现时间", "开始时间", "发生时间", "出现时刻", "时间", "时间点", "出现时间秒", "出现时间(秒)",
        "onset", "onset_s", "onset_time", "start_time", "start", "time", "timestamp", "onset_seconds",
    ),
    "reason": ("理由", "原因", "解释", "说明", "依据", "判断依据", "reason", "explanation", "rationale", "reasoning"),
}
# Generic "conclusion" keys: used for ghost_probing only when no specific key is present.
_FALLBACK_GHOST_KEYS = {_nk(k) for k in ("结论", "判断", "判断结果", "结果", "答案", "answer", "verdict", "result", "conclusion")}

_KEY_TO_FIELD: dict[str, str] = {}
for _field, _aliases in KEY_ALIASES.items():
    for _a in _aliases:
        _KEY_TO_FIELD[_nk(_a)] = _field


def _field_of(key: Any) -> str | None:
    if not isinstance(key, str):
        return None
    return _KEY_TO_FIELD.get(_nk(key))


# ---------------------------------------------------------------------------------------------
# Lenient JSON-like reader
# ---------------------------------------------------------------------------------------------

_OPEN_OBJ = "{｛"
_CLOSE_OBJ = "}｝"
_OPEN_ARR = "[［"
_CLOSE_ARR = "]］"
_COLON = ":："
_COMMA = ",，、"
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "”": "”", "＂": "＂", "「": "」"}
_WS = " \t\r\n\u3000\ufeff\xa0"
_MAX_DEPTH = 20
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "'": "'"}


class _Fail(Exception):
    pass


class _Reader:
    def __init__(self, text: str):
        self.s = text
        self.n = len(text)

    def ws(self, i: int) -> int:
        s, n = self.s, self.n
        while i < n:
            c = s[i]
            if c in _WS:
                i += 1
            elif s.startswith("//", i):
                j = s.find("\n", i)
                i = n if j < 0 else j + 1
            elif s.startswith("/*", i):
                j = s.find("*/", i + 2)
                if j < 0:
                    raise _Fail
                i = j + 2
            else:
                break
        return i

    def value(self, i: int, depth: int, stop: str) -> tuple[Any, int]:
        if depth > _MAX_DEPTH:
            raise _Fail
        i = self.ws(i)
        if i >= self.n:
            raise _Fail
        c = self.s[i]
        if c in _OPEN_OBJ:
            return self.obj(i, depth + 1)
        if c in _OPEN_ARR:
            return self.arr(i, depth + 1)
        if c in _QUOTES:
            return self.string(i, stop)
        return self.bare(i, stop)

    def obj(self, i: int, depth: int) -> tuple[dict, int]:
        out: dict[str, Any] = {}
        i += 1
        while True:
            i = self.ws(i)
            if i >= self.n:
                raise _Fail
            c = self.s[i]
            if c in _CLOSE_OBJ:
                return out, i + 1
            if c in _COMMA:  # stray or trailing comma
                i += 1
                continue
            if c in _QUOTES:
                key, i = self.string(i, _COLON)
            else:
                key, i = self.bare_key(i)
            i = self.ws(i)
            if i >= self.n or self.s[i] not in _COLON:
                raise _Fail
            val, i = self.value(i + 1, depth, _COMMA + _CLOSE_OBJ)
            out[str(key)] = val
            i = self.ws(i)
            if i < self.n and self.s[i] in _COMMA:
                i += 1
            elif i < self.n and self.s[i] in _CLOSE_OBJ:
                continue
            elif i < self.n and self.s[i] == "\n":
                continue
            elif i >= self.n:
                raise _Fail
            # tolerate a missing comma between pairs (next token starts a new key)

    def arr(self, i: int, depth: int) -> tuple[list, int]:
        out: list[Any] = []
        i += 1
        while True:
            i = self.ws(i)
            if i >= self.n:
                raise _Fail
            c = self.s[i]
            if c in _CLOSE_ARR:
                return out, i + 1
            if c in _COMMA:
                i += 1
                continue
            val, i = self.value(i, depth, _COMMA + _CLOSE_ARR)
            out.append(val)

    def string(self, i: int, stop: str) -> tuple[str, int]:
        """A quoted string. A closing quote only counts when what follows can end the value, so
        unescaped inner quotes (``"他说"危险""``) survive."""
        s, n = self.s, self.n
        open_q = s[i]
        closers = {_QUOTES[open_q]}
        if open_q in "“”":
            closers.add('"')
        buf: list[str] = []
        j = i + 1
        while j < n:
            c = s[j]
            if c == "\\" and open_q in "\"'" and j + 1 < n:
                e = s[j + 1]
                if e in _ESCAPES:
                    buf.append(_ESCAPES[e])
                    j += 2
                    continue
                if e == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", s[j + 2 : j + 6] or ""):
                    buf.append(chr(int(s[j + 2 : j + 6], 16)))
                    j += 6
                    continue
                buf.append(c)
                j += 1
                continue
            if c in closers:
                k = self.ws(j + 1)
                if k >= n or s[k] in stop or s[k] in _CLOSE_OBJ + _CLOSE_ARR + _COMMA + _COLON:
                    return "".join(buf), j + 1
            buf.append(c)
            j += 1
        raise _Fail

    def bare_key(self, i: int) -> tuple[str, int]:
        s, n = self.s, self.n
        j = i
        while j < n and s[j] not in _COLON and s[j] not in "\n" + _OPEN_OBJ + _CLOSE_OBJ + _COMMA:
            j += 1
        key = s[i:j].strip()
        if not key or len(key) > 60:
            raise _Fail
        return key, j

    def bare(self, i: int, stop: str) -> tuple[Any, int]:
        s, n = self.s, self.n
        j = i
        while j < n and s[j] not in stop and s[j] not in "\n" + _CLOSE_OBJ + _CLOSE_ARR:
            j += 1
        tok = s[i:j].strip()
        if not tok:
            raise _Fail
        return _literal(tok), j


_LITERALS = {"true": True, "false": False, "null": None, "none": None, "nil": None}


def _literal(tok: str) -> Any:
    low = tok.lower()
    if low in _LITERALS:
        return _LITERALS[low]
    if re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", tok):
        try:
            v = float(tok)
        except ValueError:  # pragma: no cover - regex guarantees a float
            return tok
        if math.isfinite(v):
            return int(v) if re.fullmatch(r"[+-]?\d+", tok) else v
    return tok


def _objects(text: str) -> list[tuple[dict, int, bool]]:
    """Every object that can be read starting at some ``{``: (object, start, inside a fence)."""
    fences = [(m.start(), m.end()) for m in re.finditer(r"```[^\n`]*\n.*?(?:```|$)", text, flags=re.S)]
    reader = _Reader(text)
    found: list[tuple[dict, int, bool]] = []
    starts = [m.start() for m in re.finditer(r"[{｛]", text)]
    if len(starts) > 500:  # pathological input: keep it fast
        starts = starts[:250] + starts[-250:]
    for start in starts:
        try:
            obj, _end = reader.obj(start, 1)
        except (_Fail, RecursionError):
            continue
        in_fence = any(a <= start < b for a, b in fences)
        found.append((obj, start, in_fence))
    return found


# ---------------------------------------------------------------------------------------------
# Value coercion
# ---------------------------------------------------------------------------------------------

_HEDGES = (
    "可能", "也许", "或许", "不确定", "不能确定", "无法确定", "无法判断", "难以判断", "不好说", "不清楚", "疑似", "似乎",
    "好像", "大概", "不一定", "待定", "未知", "不明", "maybe", "possibly", "probably", "might", "perhaps", "unclear",
    "uncertain", "not sure", "unsure", "unknown", "cannot determine", "can't determine", "can not determine",
    "hard to say", "likely", "?", "？",
)

_YES_WORDS = {
    "是", "是的", "有", "存在", "发生", "发生了", "有的", "对", "确认", "属于", "属实", "true", "yes", "y", "1", "positive",
    "鬼探头", "有鬼探头", "存在鬼探头", "是鬼探头", "发生鬼探头", "属于鬼探头", "检测到鬼探头", "出现鬼探头",
    "ghost probing", "ghostprobing", "detected", "present",
}
_NO_WORDS = {
    "否", "不是", "无", "没有", "不存在", "未发生", "没发生", "没有发生", "不属于", "不", "非", "false", "no", "n", "0",
    "negative", "无鬼探头", "没有鬼探头", "不存在鬼探头", "不是鬼探头", "未发生鬼探头", "非鬼探头", "不属于鬼探头",
    "未检测到鬼探头", "没有检测到鬼探头", "未出现鬼探头", "没有出现鬼探头",
    "no ghost probing", "not ghost probing", "not detected", "absent",
}
_CLAUSE_SPLIT = re.compile(r"[，,。；;！!、\n]+|\s+-\s+|[（(].*?[）)]")
_STRIP = " \t\r\n\u3000.。!！~～\"'“”‘’`*_"


def _has_hedge(s: str) -> bool:
    low = s.lower()
    return any(h in low for h in _HEDGES)


def _yes_no_word(s: str) -> bool | None:
    w = re.sub(r"\s+", " ", s.strip(_STRIP).lower())
    if w in _YES_WORDS:
        return True
    if w in _NO_WORDS:
        return False
    return None


def _to_bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return {1: True, 0: False}.get(v) if v in (0, 1) else None
    if not isinstance(v, str):
        return None
    if _has_hedge(v):
        return None
    whole = _yes_no_word(v)
    if whole is not None:
        return whole
    # "是（行人从公交车后冲出）" / "否，没有鬼探头": the first clause decides, when the rest does not contradict it
    clauses = [c for c in _CLAUSE_SPLIT.split(v) if c and c.strip(_STRIP)]
    if not clauses:
        return None
    first = _yes_no_word(clauses[0])
    if first is None:
        return None
    for c in clauses[1:]:
        other = _yes_no_word(c)
        if other is not None and other != first:
            return None
    return first


def _to_confidence(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        x = float(v)
    elif isinstance(v, str):
        s = v.strip().strip(_STRIP).lower().replace("％", "%")
        word = _level(s)
        if word is not None:
            return CONFIDENCE_WORDS[word]
        m = re.fullmatch(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(%)?", s)
        if not m:
            return None
        x = float(m.group(1))
        if m.group(2):
            x /= 100.0
            return x if 0.0 <= x <= 1.0 else None
    else:
        return None
    if not math.isfinite(x) or x < 0:
        return None
    if x <= 1.0:
        return x
    if x <= 100.0:
        return x / 100.0
    return None


_LEVEL_WORDS = {
    "high": ("高", "很高", "非常高", "极高", "较高", "高危", "严重", "high", "very high", "h", "critical", "severe"),
    "medium": ("中", "中等", "一般", "较中", "中度", "medium", "moderate", "mid", "m", "med"),
    "low": ("低", "较低", "很低", "非常低", "轻微", "low", "very low", "l", "minor"),
}
_LEVEL_LOOKUP = {w: lvl for lvl, ws in _LEVEL_WORDS.items() for w in ws}


def _level(v: Any) -> str | None:
    if not isinstance(v, str):
        return None
    s = re.sub(r"\s+", " ", v.strip(_STRIP).lower())
    s = re.sub(r"(风险|危险|等级|级别|程度)$", "", s) or s
    return _LEVEL_LOOKUP.get(s)


_OBJECT_WORDS: dict[str, tuple[str, ...]] = {
    "pedestrian": ("行人", "人", "路人", "儿童", "小孩", "孩子", "老人", "pedestrian", "pedestrians", "person", "people",
                   "child", "kid", "human", "walker"),
    "cyclist": ("骑车人", "自行车", "骑自行车的人", "骑行者", "单车", "cyclist", "bicycle", "bike", "bicyclist", "cycle"),
    "motorcycle": ("摩托车", "电动车", "电瓶车", "电动自行车", "踏板车", "摩托", "motorcycle", "motorbike", "scooter",
                   "e-bike", "ebike", "moped", "motorcyclist"),
    "vehicle": ("车辆", "汽车", "轿车", "小汽车", "卡车", "货车", "公交车", "面包车", "车", "机动车", "suv",
                "vehicle", "car", "truck", "bus", "van", "automobile"),
    "animal": ("动物", "狗", "猫", "animal", "dog", "cat"),
    "other": ("其他", "其它", "other", "others"),
}
_OBJECT_LOOKUP = {w: t for t, ws in _OBJECT_WORDS.items() for w in ws}
# Substring cues for longer phrases ("一名行人", "骑电动车的人"), longest first.
_OBJECT_CUES = sorted(
    [(w, t) for t, ws in _OBJECT_WORDS.items() for w in ws if len(w) >= 2 and not w.isascii()]
    + [(w, t) for t, ws in _OBJECT_WORDS.items() for w in ws if w.isascii() and len(w) >= 3],
    key=lambda p: -len(p[0]),
)
_NONE_WORDS = {"无", "没有", "none", "null", "n/a", "na", "nil", "不适用", "-", "—", ""}


def _object_type(v: Any) -> str | None:
    if not isinstance(v, str):
        return None
    s = re.sub(r"\s+", " ", v.strip(_STRIP).lower())
    if s in _NONE_WORDS:
        return None
    if s in _OBJECT_LOOKUP:
        return _OBJECT_LOOKUP[s]
    kinds: set[str] = set()
    rest = s
    for w, t in _OBJECT_CUES:
        if w.isascii():
            if re.search(rf"\b{re.escape(w)}\b", rest):
                kinds.add(t)
                rest = re.sub(rf"\b{re.escape(w)}\b", " ", rest)
        elif w in rest:
            kinds.add(t)
            rest = rest.replace(w, " ")
    if len(kinds) > 1:
        kinds.discard("other")
    if len(kinds) == 1:
        return kinds.pop()
    if kinds:
        return None  # several kinds named: "行人/骑车人"
    if "/" in s or "|" in s or " or " in s or "或" in s:
        return None
    return "other"


_NUM = r"(\d+(?:\.\d+)?|\.\d+)"


def _onset(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        x = float(v)
        return x if math.isfinite(x) and x >= 0 else None
    if isinstance(v, list) and v:
        return _onset(v[0])
    if not isinstance(v, str):
        return None
    s = v.strip().lower().replace("：", ":")
    if not s or s.strip(_STRIP) in _NONE_WORDS:
        return None
    if re.search(r"帧|frame", s) or re.match(r"[-−]\s*\d", s):
        return None
    m = re.search(r"(?<![\d.])(?:(\d{1,2}):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)(?![\d.:])", s)
    if m:
        h = int(m.group(1) or 0)
        return h * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    m = re.search(r"(?<![\d.\-])" + _NUM + r"\s*(ms|毫秒|s|sec|secs|second|seconds|秒|秒钟|分钟|min|mins|minutes?)?", s)
    if not m:
        return None
    x = float(m.group(1))
    unit = m.group(2) or "s"
    if unit in ("ms", "毫秒"):
        x /= 1000.0
    elif unit in ("分钟", "min", "mins", "minute", "minutes"):
        x *= 60.0
    return x if math.isfinite(x) else None


def _reason(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, list):
        return "；".join(_reason(x) for x in v if _reason(x))
    if isinstance(v, dict):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------

def _fields(d: dict) -> dict[str, Any]:
    """Map a dict's keys onto Verdict fields (first matching key per field wins)."""
    out: dict[str, Any] = {}
    fallback_ghost = None
    for k, v in d.items():
        f = _field_of(k)
        if f is not None and f not in out:
            out[f] = v
        elif f is None and isinstance(k, str) and _nk(k) in _FALLBACK_GHOST_KEYS and fallback_ghost is None:
            if not isinstance(v, (dict, list)):
                fallback_ghost = v
    if "ghost_probing" not in out and fallback_ghost is not None:
        out["ghost_probing"] = fallback_ghost
    return out


def verdict_from_dict(d: dict, raw: str | None = None) -> Verdict:
    """Build a Verdict from a dict with Chinese or English keys (model output or ``Verdict.to_dict()``).

    ``status`` is "ok" exactly when ``ghost_probing`` could be read; an explicit ``status: "error"``
    is kept. ``raw`` defaults to the dict's own ``raw`` entry, else its JSON.
    """
    if not isinstance(d, dict):
        return Verdict(status="unparsed", raw=raw if raw is not None else str(d))
    f = _fields(d)
    ghost = _to_bool(f.get("ghost_probing"))
    if raw is None:
        raw = d["raw"] if isinstance(d.get("raw"), str) else json.dumps(d, ensure_ascii=False, default=str)
    status = "ok" if ghost is not None else "unparsed"
    if d.get("status") == "error":
        status = "error"
    danger = _level(f.get("danger_level"))
    obj = _object_type(f.get("object_type"))
    return Verdict(
        ghost_probing=ghost if status != "error" else None,
        confidence=_to_confidence(f.get("confidence")),
        danger_level=danger if danger in DANGER_LEVELS else None,
        object_type=obj if obj in OBJECT_TYPES else None,
        onset_s=_onset(f.get("onset_s")),
        reason=_reason(f.get("reason")),
        status=status,
        raw=raw,
    )


_LINE_KV = re.compile(r"^[\s>*#\-•·\d.)]*[*_`\"“]*([^:：\n]{1,30}?)[*_`\"”]*\s*[:：]\s*(.+?)\s*$")


def _from_lines(text: str) -> dict | None:
    """``key: value`` lines with known keys. Returns None unless a ghost-probing key is present
    and all its occurrences agree."""
    found: dict[str, Any] = {}
    ghost_values: list[bool | None] = []
    for line in text.splitlines():
        m = _LINE_KV.match(line)
        if not m:
            continue
        key, val = m.group(1).strip(), m.group(2).strip().strip("*_`").strip().rstrip(",，")
        f = _field_of(key)
        if f is None:
            continue
        if len(val) >= 2 and val[0] in _QUOTES and val[-1] in ('"', "'", "”", "’"):
            val = val[1:-1]
        if f == "ghost_probing":
            ghost_values.append(_to_bool(val))
        found.setdefault(f, _literal(val))
    if not ghost_values or any(g is None for g in ghost_values) or len(set(ghost_values)) != 1:
        return None
    return found


_YES_LINE = [
    r"是", r"是的", r"有", r"存在", r"yes", r"true",
    r"(?:是|有|存在|发生了?|出现了?|检测到)(?:了)?鬼探头(?:现象|行为|事件|情况)?",
    r"(?:这|该视频|视频中|画面中)?(?:是|属于|存在|有|出现了?|发生了?)鬼探头(?:现象|行为|事件|情况)?",
    r"鬼探头",
    r"(?:yes|answer:? yes)",
    r"(?:this is |it is |there is |there's |yes[, ]+)?(?:a )?ghost[- ]?probing(?: (?:event|detected|case|occurs|present))?",
    r"ghost[- ]?probing(?: is)? (?:detected|present)",
]
_NO_LINE = [
    r"否", r"不是", r"没有", r"无", r"不存在", r"未发生", r"no", r"false",
    r"(?:没有|不存在|未发生|没发生|未出现|没出现|未检测到|没有检测到|无)(?:发生|出现)?鬼探头(?:现象|行为|事件|情况)?",
    r"(?:这|该视频|视频中|画面中)?(?:不是|不属于|不存在|没有|未出现|没有出现|未发生|没有发生)鬼探头(?:现象|行为|事件|情况)?",
    r"(?:this is |it is |there is |there's |no[, ]+)?(?:no|not a?|not) ghost[- ]?probing(?: (?:event|detected|case|here))?",
    r"no ghost[- ]?probing(?: is)? (?:detected|present|found)",
    r"ghost[- ]?probing(?: is)? not (?:detected|present)",
]
_YES_RE = re.compile("|".join(f"(?:{p})" for p in _YES_LINE))
_NO_RE = re.compile("|".join(f"(?:{p})" for p in _NO_LINE))


def _from_single_line(text: str) -> bool | None:
    """A whole answer that is one short line saying only yes or only no."""
    s = text.strip()
    s = re.sub(r"^(?:答案|回答|结论|答|answer|verdict)\s*[:：]\s*", "", s, flags=re.I)
    if not s or "\n" in s or len(s) > 60 or _has_hedge(s):
        return None
    if re.search(r"[{}｛｝\[\]]", s):
        return None
    clauses = [c.strip(_STRIP).lower() for c in re.split(r"[，,。；;！!、]+", s)]
    clauses = [re.sub(r"\s+", " ", c) for c in clauses if c]
    if not clauses:
        return None
    seen: set[bool] = set()
    for c in clauses:
        if _NO_RE.fullmatch(c):
            seen.add(False)
        elif _YES_RE.fullmatch(c):
            seen.add(True)
        else:
            return None  # an unrecognised clause: be conservative
    return seen.pop() if len(seen) == 1 else None


def parse(text: str) -> Verdict:
    """Read a model answer into a Verdict. Never raises; never turns an unreadable answer into "no"."""
    try:
        return _parse(text)
    except Exception:  # noqa: BLE001 - the contract is "never raises"; an odd input is simply unparsed
        return Verdict(status="unparsed", raw=text if isinstance(text, str) else str(text))


def _parse(text: str) -> Verdict:
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    best: tuple[tuple, dict] | None = None
    for obj, start, in_fence in _objects(text):
        f = _fields(obj)
        if not f:
            continue
        has_ghost = _to_bool(f.get("ghost_probing")) is not None
        score = (has_ghost, "ghost_probing" in f, len(f), in_fence, start)
        if best is None or score > best[0]:
            best = (score, obj)
    if best is not None and best[0][0]:
        return verdict_from_dict(best[1], raw=text)
    lines = _from_lines(text)
    if lines is not None:
        return verdict_from_dict(lines, raw=text)
    if best is not None:  # an object with verdict keys but no readable yes/no: keep what it says, unparsed
        return verdict_from_dict(best[1], raw=text)
    yn = _from_single_line(text)
    if yn is not None:
        return Verdict(ghost_probing=yn, status="ok", raw=text)
    return Verdict(status="unparsed", raw=text)
