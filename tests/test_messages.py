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


# -- every sentence the backend can show reads in Chinese --------------------------------------------------
import ast  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

from tests.test_bad_inputs import ws  # noqa: E402,F401  (the battery's bad videos, CSVs, JSON, databases, paths)

ROOT = Path(__file__).resolve().parents[1]
# English on purpose: the CLI's own wording, the GPU worker and the SageMaker serving container, none of
# which the dashboard shows
NOT_SHOWN = ("webapp/cli.py", "webapp/commands/", "engines/llm/worker/", "engines/vad/serve/server.py")
CJK = re.compile(r"[\u4e00-\u9fff]")
# quoted text, flags with their value and pip commands stay as written
QUOTED = re.compile(r"`[^`]*`|'[^']*'|\"[^\"]*\"|“[^”]*”|‘[^’]*’|--[\w-]+(?:[ =][^\s，。；：（）]+)?|pip install [^，。；：（）]+"
                    r"|\b(?:az|aws) [a-z][\w-]*(?: [a-z][\w-]*)?")
ENGLISH = re.compile(r"\b[A-Za-z][a-z]+\b(?: +\b[A-Za-z][a-z]+\b)+")  # two English words in a row


def zh_problem(text: str) -> str | None:
    """Why ``text`` (a message already in Chinese mode) is not Chinese: no Chinese at all, or an English phrase
    left over outside quotes (paths, names, flags and values stay as written)."""
    if not CJK.search(text):
        return "no Chinese"
    # names such as "AzureML Data Scientist" or "Hugging Face" stay; a phrase with a lower-case word is English
    left = [w for w in ENGLISH.findall(QUOTED.sub(" ", text)) if re.search(r"\b[a-z]", w)]
    return f"English left: {left[0]!r}" if left else None


def _family() -> set[str]:
    """GhostProbeError and every class that derives from it, read from the source."""
    bases: dict[str, set[str]] = {}
    for p in ROOT.glob("*/**/*.py"):
        if p.parts[len(ROOT.parts)] not in ("engines", "reports", "prompts", "webapp"):
            continue
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.ClassDef):
                bases.setdefault(n.name, set()).update(
                    b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in n.bases)
    fam = {"GhostProbeError"}
    while True:
        more = {c for c, bs in bases.items() if bs & fam} - fam
        if not more:
            return fam
        fam |= more


# engines.errors names the file it checks ({what}) and the kind of special file ({kind}) from a few words
NAMED_VALUES = {"engines/errors.py": {"what": "label file", "kind": "a FIFO (named pipe)"}}


def _sample(node: ast.AST, named: dict[str, str] | None = None) -> str | None:
    """The message a raise writes, with every interpolated value as 7 (a conditional plural as written;
    ``what``/``kind`` as engines.errors fills them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    named = named or {}
    if isinstance(node, ast.JoinedStr):
        out = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                out.append(str(v.value))
            elif isinstance(v.value, ast.IfExp) and isinstance(v.value.body, ast.Constant):
                out.append(str(v.value.body.value))
            elif isinstance(v.value, ast.Name) and v.value.id in named:
                out.append(named[v.value.id])
            else:
                out.append("7")
        return "".join(out)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        a, b = _sample(node.left, named), _sample(node.right, named)
        return None if a is None and b is None else (a if a is not None else "7") + (b if b is not None else "7")
    return None  # a message built elsewhere (raise X(why)): its own raise is checked where it is written


def raised_sentences() -> list[tuple[str, str]]:
    """(file:line, message) of every ``raise <GhostProbeError family>("…")`` the dashboard can show (and of
    every ``return <family>("…")``, a helper's error for its caller to raise), of every engine's ``return False,
    "why"`` (availability) and of every ``reason="…"`` (a verdict's reason)."""
    fam = _family()
    out = []
    for p in sorted(ROOT.glob("*/**/*.py")):
        rel = p.relative_to(ROOT).as_posix()
        if rel.split("/")[0] not in ("engines", "reports", "prompts", "webapp") or rel.startswith(NOT_SHOWN):
            continue
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.FunctionDef) and n.name.endswith("_problem"):
                # a phrase saying what is wrong, raised as "<subject> <phrase>." (reports.run_folder)
                for r in ast.walk(n):
                    phrase = _sample(r.value) if isinstance(r, ast.Return) and r.value is not None else None
                    if phrase:
                        out.append((f"{rel}:{r.lineno}", f"/runs/r1/manifest.json {phrase}."))
                        out.append((f"{rel}:{r.lineno}", f"A prediction record {phrase}."))
            if isinstance(n, ast.Return) and isinstance(n.value, ast.Tuple) and len(n.value.elts) == 2 and \
                    isinstance(n.value.elts[0], ast.Constant) and n.value.elts[0].value is False:
                reason = _sample(n.value.elts[1])  # an engine's availability: (False, "why not")
                if reason and re.search(r"[A-Za-z]{2}", reason):
                    out.append((f"{rel}:{n.lineno}", reason))
            if isinstance(n, ast.keyword) and n.arg == "reason":
                reason = _sample(n.value)  # Verdict(reason="…"): the verdict card shows it
                if reason and re.search(r"[A-Za-z]{2}", reason):
                    out.append((f"{rel}:{n.value.lineno}", reason))
            exc = n.exc if isinstance(n, ast.Raise) else n.value if isinstance(n, ast.Return) else None
            if isinstance(exc, ast.Call) and exc.args:  # raise X("…"), or return X("…") for a caller to raise
                f = exc.func
                name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", "")
                s = _sample(exc.args[0], NAMED_VALUES.get(rel)) if name in fam else None
                if s is not None and re.search(r"[A-Za-z]{2}", s):  # "{path} {why}.": its phrases are checked
                    out.append((f"{rel}:{n.lineno}", s))
    return out


def test_the_chinese_check_catches_english():
    assert zh_problem("A sentence nobody translated yet.") == "no Chinese"
    assert zh_problem("无法读取 x.mp4（the file is gone）。").startswith("English left")
    assert zh_problem("文件 “a b c d.mp4” 不存在；`ghostprobe runs list` 会列出它们。") is None
    assert msg.error_text("Some brand new sentence nobody translated.", "zh") == \
        "Some brand new sentence nobody translated."  # what a missing line looks like: the test below fails


def test_every_sentence_the_backend_raises_reads_in_chinese():
    import webapp.tabs.chat  # noqa: F401  (tabs register their own sentences)
    import webapp.tabs.library  # noqa: F401
    import webapp.tabs.prompt_lab  # noqa: F401
    import webapp.tabs.reports  # noqa: F401

    found = raised_sentences()
    assert len(found) > 300, len(found)  # the scan sees the whole backend
    bad = []
    for where, english in found:
        zh = msg.error_text(english, "zh")
        why = zh_problem(zh)
        if why:
            bad.append(f"{where}: {english!r} -> {zh!r} ({why})")
    assert not bad, f"{len(bad)} backend sentences without Chinese (add them to webapp/messages_zh.py):\n" + \
        "\n".join(bad)
    # English mode keeps every one of them as written
    where, english = found[0]
    assert msg.error_text(english, "en") == msg.error_text(english, "en").strip() and not CJK.search(
        msg.error_text(english, "en"))


def test_backend_values_are_carried_into_the_chinese():
    cases = {
        "The number of frames must be a positive whole number, not -1.": "帧数必须是正整数，不能是 -1。",
        'The time window 3–1 s of "a.mp4" is empty: the end must come after the start.': "a.mp4",
        "x.csv has no video_id column; expected a header such as video_id,ground_truth_label,note or "
        "video_id,ghost_probing,onset_s.": "video_id,ground_truth_label,note",
        "Unknown engine 'gpt'; known engines: baseline, motion.": "未知的引擎“gpt”；已有的引擎：baseline, motion。",
        "/tmp/x.csv already exists; pass --force to overwrite it.": "/tmp/x.csv 已存在：如要覆盖，请加 --force。",
        "prompts/a.yaml has an unmatched brace in system; write literal braces as {{ and }}.":
            "prompts/a.yaml 在 system 中有不成对的花括号：字面花括号请写成 {{ 和 }}。",
        "GHOSTPROBE_AUTH must look like user:password.": "GHOSTPROBE_AUTH 必须形如 user:password。",
    }
    for english, want in cases.items():
        zh = msg.error_text(english, "zh")
        assert want in zh and zh_problem(zh) is None, (english, zh)


def _battery_errors(ws, tmp_path, monkeypatch) -> list[tuple[str, BaseException]]:
    """Feed the bad-input battery's files through what the dashboard calls with them, in-process."""
    from engines.base import GenerationOptions
    from engines.errors import input_file, output_path
    from engines.video import probe
    from reports.labels import import_label_csv
    from reports.predictions_import import import_predictions
    from reports.store import Store
    from webapp import detection as D
    from webapp.config import load_config
    from webapp.library import Library

    got: list[tuple[str, BaseException]] = []

    def attempt(case: str, fn, *a, **kw) -> None:
        try:
            fn(*a, **kw)
        except Exception as e:  # noqa: BLE001  (every kind is checked below)
            got.append((case, e))

    for k, p in ws["videos"].items():
        attempt(f"probe {k}", probe, p)
    db = tmp_path / "copy.duckdb"
    shutil.copy(ws["seed"], db)
    monkeypatch.setenv("GHOSTPROBE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GHOSTPROBE_LIBRARY", str(ws["lib"]))
    monkeypatch.delenv("GHOSTPROBE_UPLOADS", raising=False)
    cfg = load_config(str(db))
    s = Store(cfg.db_path)
    try:
        lib = Library(cfg, s)
        for k in ("png", "text", "empty", "random", "zero_mp4", "trunc10"):
            src = ws["videos"][k]
            attempt(f"upload {k}", lib.add_upload, src, original_name=src.name)
        for k, p in ws["csv"].items():
            if k != "good":
                attempt(f"labels {k}", import_label_csv, s, p, "new-set")
        attempt("labels bad set name", import_label_csv, s, ws["csv"]["good"], "a/b c")
        attempt("labels existing set", import_label_csv, s, ws["csv"]["good"], "base")
        imp = dict(name="new-run", label_set="base", video_field="video", answer_field="answer", positive="yes",
                   negative="no", confidence_field="conf")
        for k, p in ws["json"].items():
            if k != "good":
                attempt(f"json {k}", import_predictions, s, p, **imp)
        attempt("json bad regex", import_predictions, s, ws["json"]["good"], **{**imp, "positive": "("})
        attempt("json unknown set", import_predictions, s, ws["json"]["good"], **{**imp, "label_set": "nope"})
        good = ws["good"]
        for case, kw in (("frames 0", {"frames": 0}), ("frames -1", {"frames": -1}),
                         ("frames 100000", {"frames": 100000}), ("max side -1", {"max_side": -1}),
                         ("temperature nan", {"options": GenerationOptions(temperature=float("nan"))}),
                         ("max new tokens 0", {"options": GenerationOptions(max_new_tokens=0)}),
                         ("timeout 0", {"options": GenerationOptions(timeout_s=0)})):
            attempt(f"detect {case}", D.run_detect, s, engine="baseline", video=good, video_id="good.mp4", **kw)
        for k, p in ws["nothing"].items():
            attempt(f"detect {k}", D.run_detect, s, engine="baseline", video=p)
        attempt("detect unknown engine", D.run_detect, s, engine="nope", video=good)
    finally:
        s.close()
    for k, p in ws["dbs"].items():
        attempt(f"db {k}", Store, p)
    for k in ("existing_file", "under_file", "folder_html"):
        attempt(f"output {k}", output_path, ws["outs"][k], "report")
    for k in ("fifo", "loop", "folder_html"):
        attempt(f"input {k}", input_file, ws["outs"][k], "file with a model answer")
    attempt("input device", input_file, "/dev/zero", "file with a model answer")
    return got


def test_what_the_bad_input_battery_gets_back_reads_in_chinese(ws, tmp_path, monkeypatch):
    from engines.errors import is_user_error

    got = _battery_errors(ws, tmp_path, monkeypatch)
    assert len(got) >= 60, [c for c, _ in got]  # nearly every bad input is refused
    bad = []
    for case, e in got:
        if not is_user_error(e):
            bad.append(f"{case}: not a user error: {e!r}")
            continue
        zh = msg.error_text(e, "zh")
        why = zh_problem(zh)
        if why:
            bad.append(f"{case}: {msg.error_text(e, 'en')!r} -> {zh!r} ({why})")
    assert not bad, f"{len(bad)} of {len(got)}:\n" + "\n".join(bad)
