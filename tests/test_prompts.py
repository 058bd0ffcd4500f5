"""The prompt library (prompts/), its CLI (`ghostprobe prompts …`, `ghostprobe verdict parse`)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from engines.errors import PromptError
from engines.types import Clip, VideoMeta
from engines.verdict import ANSWER_SCHEMA_EN, ANSWER_SCHEMA_ZH, _field_of, parse
from prompts import (
    ALLOWED_VARIABLES,
    BUNDLED_DIR,
    PromptLibrary,
    PromptTemplate,
    clip_variables,
    diff,
    load_template,
)

ROOT = Path(__file__).resolve().parents[1]
VARS = {"duration_s": 12.3, "num_frames": 3, "timestamps": "0.0s, 6.1s, 12.2s", "fps": 30, "width": 1280,
        "height": 720, "video_id": "dada_001"}


@pytest.fixture(autouse=True)
def _no_user_prompts(monkeypatch, tmp_path):
    monkeypatch.delenv("GHOSTPROBE_PROMPTS", raising=False)
    monkeypatch.setenv("GHOSTPROBE_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def lib() -> PromptLibrary:
    return PromptLibrary.load([BUNDLED_DIR])


def write(path: Path, data: dict | str) -> Path:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path


def minimal(**over) -> dict:
    d = {"id": "t", "version": 1, "parent": None, "kind": "detect", "language": "zh", "title": "测试",
         "system": "系统", "user": "视频 {duration_s} 秒。\n{answer_schema}", "answer_schema": '{"是否鬼探头": "是 或 否"}'}
    d.update(over)
    return d


# ---------------------------------------------------------------------------------------------
# The bundled library
# ---------------------------------------------------------------------------------------------

def test_bundled_versions_and_lineage(lib):
    gp = lib.versions("ghost_probing")
    assert [t.version for t in gp] == [1, 2, 3]
    assert [t.parent for t in gp] == [None, "ghost_probing@1", "ghost_probing@2"]
    assert all(t.kind == "detect" and t.language == "zh" for t in gp)
    assert lib.detect_default().ref == "ghost_probing@3"
    chat = lib.chat_default()
    assert chat.kind == "chat" and chat.ref == "chat@1"
    assert len({t.hash for t in lib.all()}) == len(lib.all())
    for t in lib.all():
        assert t.source.name == f"{t.id}.v{t.version}.yaml"
        assert len(t.hash) == 64 and t.short_hash == t.hash[:12]
        assert t.variables() <= ALLOWED_VARIABLES
        assert t.title and t.notes


def test_versions_differ_in_the_way_they_claim(lib):
    v1, v2, v3 = (lib.get(f"ghost_probing@{n}") for n in (1, 2, 3))
    # v2 adds a definition and counter-examples that v1 lacks
    for cue in ("遮挡物", "切入", "远处", "不是鬼探头"):
        assert cue in v2.user and cue not in v1.user
    # v3 keeps v2's definition and counter-examples word for word, then asks for steps before the JSON
    definition = v2.user.split("以下情况不是鬼探头：")[1].split("\n\n")[0]
    assert definition in v3.user
    assert v2.user.split("\n\n")[1] in v3.user
    for step in ("第一步 场景", "第二步 遮挡物", "第三步 出现", "第四步 时间"):
        assert step in v3.user and step not in v2.user
    assert "```json" in v3.user
    assert v1.system == v2.system == v3.system


def test_detect_schemas_parse_to_every_verdict_field_and_echo_is_unparsed(lib):
    for t in lib.all():
        if t.kind != "detect":
            continue
        schema = json.loads(t.answer_schema)
        assert {_field_of(k) for k in schema} == {"ghost_probing", "confidence", "danger_level", "object_type",
                                                  "onset_s", "reason"}
        assert schema == json.loads(ANSWER_SCHEMA_ZH if t.language == "zh" else ANSWER_SCHEMA_EN)
        echo = parse(t.answer_schema)
        assert echo.status == "unparsed" and echo.ghost_probing is None


def test_render_every_bundled_template(lib):
    for t in lib.all():
        msgs = t.render(VARS)
        assert [m["role"] for m in msgs] == ["system", "user"]
        text = "\n".join(m["content"] for m in msgs)
        assert "12.3" in text and "0.0s, 6.1s, 12.2s" in text
        for name in ALLOWED_VARIABLES:
            assert "{" + name + "}" not in text
        if t.kind == "detect":
            assert t.answer_schema in msgs[1]["content"]


def test_render_few_shot_missing_and_extra_variables(tmp_path):
    t = load_template(write(tmp_path / "t.yaml", minimal(few_shot='示例：{"是否鬼探头": "否"}', system="帧率 {fps}")))
    msgs = t.render({**VARS, "unused": 1})
    assert msgs[0]["content"] == '帧率 30\n\n示例：{"是否鬼探头": "否"}'
    assert msgs[1]["content"] == '视频 12.3 秒。\n{"是否鬼探头": "是 或 否"}'
    with pytest.raises(PromptError, match=r"needs \{duration_s\}, \{fps\}"):
        t.render({})


def test_literal_braces_are_escaped(tmp_path):
    t = load_template(write(tmp_path / "t.yaml", minimal(kind="chat", answer_schema=None,
                                                         user="回答形如 {{\"a\": 1}}，时长 {duration_s}")))
    assert t.variables() == {"duration_s"}
    assert t.render(VARS)[1]["content"] == '回答形如 {"a": 1}，时长 12.3'


def test_clip_variables_from_a_real_clip(lib):
    meta = VideoMeta(path="/videos/dada_001.mp4", frames=367, fps=29.97002997, duration_s=12.2455, width=1280,
                     height=720, codec="h264", sha256="0" * 64, size_bytes=1)
    clip = Clip(frames=np.zeros((3, 36, 64, 3), np.uint8), timestamps_s=[0.0, 6.123, 12.2], indices=[0, 183, 366],
                fps=29.97002997, duration_s=12.2455, source="/videos/dada_001.mp4", sha256="0" * 64, meta=meta)
    v = clip_variables(clip)
    assert v == {"duration_s": 12.2, "num_frames": 3, "timestamps": "0.0s, 6.1s, 12.2s", "fps": 29.97,
                 "width": 1280, "height": 720, "video_id": "dada_001"}
    assert set(v) | {"answer_schema"} == ALLOWED_VARIABLES
    assert "0.0s, 6.1s, 12.2s" in lib.detect_default().render(v)[1]["content"]
    assert clip_variables(clip, video_id="x")["video_id"] == "x"


# ---------------------------------------------------------------------------------------------
# Hashing and YAML
# ---------------------------------------------------------------------------------------------

def test_whitespace_only_edits_keep_the_hash_and_content_edits_change_it(tmp_path, lib):
    original = lib.get("ghost_probing@2")
    block = original.source.read_text(encoding="utf-8")
    # Same content written differently: flow style, other key order, comments, trailing spaces, CRLF.
    data = yaml.safe_load(block)
    reordered = "# a comment\n" + json.dumps(dict(reversed(list(data.items()))), ensure_ascii=False, indent=4) + "\n"
    spaced = "\r\n".join(line + "   " for line in block.splitlines()) + "\r\n\r\n"
    for i, text in enumerate([reordered, spaced, original.to_yaml()]):
        assert load_template(write(tmp_path / f"same{i}.yaml", text)).hash == original.hash
    for field, value in [("user", data["user"].replace("很短", "很短！")), ("notes", data["notes"] + "另注。"),
                         ("title", "另一个标题"), ("version", 9)]:
        changed = load_template(write(tmp_path / f"{field}.yaml", {**data, field: value}))
        assert changed.hash != original.hash
    same_content = load_template(write(tmp_path / "notes.yaml", {**data, "notes": "x"}))
    assert same_content.content_hash == original.content_hash


texts = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="{}"), max_size=60)


@settings(max_examples=60, deadline=None)
@given(system=texts.map(lambda s: "s" + s), user=texts.map(lambda s: s + "x"), notes=st.none() | texts, few_shot=st.none() | texts,
       lines=st.lists(texts, max_size=4))
def test_to_yaml_round_trips(tmp_path_factory, system, user, notes, few_shot, lines):
    t = PromptTemplate(id="rt", version=3, kind="chat", language="en", title="t", system=system + "\n".join(lines),
                       user=user + "\n".join(lines), notes=notes, few_shot=few_shot, parent="rt@2")
    path = tmp_path_factory.mktemp("rt") / "rt.v3.yaml"
    path.write_text(t.to_yaml(), encoding="utf-8")
    back = load_template(path)
    assert back.hash == t.hash
    assert back.canonical() == t.canonical()


# ---------------------------------------------------------------------------------------------
# Loading errors: one sentence naming the file and the problem
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, message", [
    (minimal(user="速度 {speed}，{answer_schema}"), r"x\.yaml uses unknown variable \{speed\}; allowed: .*\{duration_s\}"),
    ({k: v for k, v in minimal().items() if k != "title"}, r"x\.yaml is missing required field 'title'"),
    (minimal(colour="red"), r"x\.yaml has unknown field 'colour'"),
    (minimal(version="v2"), r"x\.yaml has version 'v2'"),
    (minimal(version=0), r"x\.yaml has version 0"),
    (minimal(kind="classify"), r"x\.yaml has kind 'classify'; allowed: detect, chat"),
    (minimal(language="fr"), r"x\.yaml has language 'fr'"),
    (minimal(parent="ghost_probing"), r"x\.yaml has parent 'ghost_probing'; it must look like id@version"),
    (minimal(id="a@b"), r"x\.yaml has an invalid id"),
    (minimal(user="JSON: {\"a\": 1} {answer_schema}"), r"x\.yaml has \{\"a\": 1\} in user, which is not a variable; write literal braces as \{\{ and \}\}"),
    (minimal(user="未闭合 { {answer_schema}"), r"x\.yaml has an unmatched brace in user"),
    (minimal(user="位置 {} {answer_schema}"), r"x\.yaml has an empty or positional"),
    (minimal(user="{duration_s:.1f} {answer_schema}"), r"only plain names"),
    (minimal(answer_schema=None), r"x\.yaml uses \{answer_schema\} but has no answer_schema"),
    (minimal(user="没有 schema"), r"x\.yaml is a detect prompt that never inserts \{answer_schema\}"),
    (minimal(system=["a"]), r"x\.yaml has a system that is not text"),
    ("id: [unclosed\n", r"x\.yaml is not valid YAML at line"),
    ("- just\n- a list\n", r"x\.yaml is not a YAML mapping"),
])
def test_load_errors(tmp_path, data, message):
    path = write(tmp_path / "x.yaml", data)
    with pytest.raises(PromptError, match=message) as e:
        load_template(path)
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(PromptError, match="does not exist"):
        load_template(tmp_path / "nope.yaml")


# ---------------------------------------------------------------------------------------------
# Library: lookup, folders, conflicts, new versions
# ---------------------------------------------------------------------------------------------

def test_get_by_id_version_and_hash_prefix(lib):
    v2 = lib.get("ghost_probing@2")
    assert lib.get("ghost_probing").version == 3
    assert lib.get("ghost_probing@latest").version == 3
    assert lib.get(v2.hash[:6]) is v2 and lib.get(v2.hash.upper()[:10]) is v2 and lib.get(v2.hash) is v2
    assert lib.get(v2) is v2
    with pytest.raises(PromptError, match="no prompt matches"):
        lib.get(v2.hash[:5])
    with pytest.raises(PromptError, match="no version '9'; versions: 1, 2, 3"):
        lib.get("ghost_probing@9")
    with pytest.raises(PromptError, match="no prompt has id 'nope'"):
        lib.get("nope@1")
    with pytest.raises(PromptError, match="no prompt matches 'nope'"):
        lib.get("nope")


def test_default_dirs_include_the_user_folder(tmp_path, monkeypatch):
    data_prompts = tmp_path / "data" / "prompts"
    data_prompts.mkdir(parents=True)
    write(data_prompts / "mine.v1.yaml", minimal(id="mine"))
    assert "mine@1" in [t.ref for t in PromptLibrary.load().all()]
    other = tmp_path / "elsewhere"
    other.mkdir()
    write(other / "theirs.v1.yaml", minimal(id="theirs"))
    monkeypatch.setenv("GHOSTPROBE_PROMPTS", str(other))
    refs = [t.ref for t in PromptLibrary.load().all()]
    assert "theirs@1" in refs and "mine@1" not in refs and "ghost_probing@3" in refs


def test_conflicting_versions_and_duplicates(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    bundled_v1 = (BUNDLED_DIR / "ghost_probing.v1.yaml").read_text(encoding="utf-8")
    write(user / "copy.yaml", bundled_v1)  # an identical copy is harmless
    assert len(PromptLibrary.load([BUNDLED_DIR, user]).versions("ghost_probing")) == 3
    write(user / "clash.yaml", bundled_v1.replace("直接结构化提问", "改过的标题"))
    with pytest.raises(PromptError, match="clash.yaml redefines ghost_probing@1 already defined by"):
        PromptLibrary.load([BUNDLED_DIR, user])
    write(user / "broken.yaml", "id: [")
    lenient = PromptLibrary.load([BUNDLED_DIR, user, tmp_path / "missing"], strict=False)
    assert len(lenient.problems) == 3 and lenient.get("ghost_probing@3")
    with pytest.raises(PromptError, match="does not exist"):
        PromptLibrary.load([tmp_path / "missing"])


def test_save_new_version(tmp_path, lib):
    base = lib.get("ghost_probing@2")
    user = tmp_path / "user"
    new = lib.save_new_version(base, user=base.user.replace("反应时间很短", "反应时间很短（通常不足 2 秒）"),
                               notes="试验：给出反应时间的量化描述。", dir=user)
    assert (new.ref, new.parent) == ("ghost_probing@4", "ghost_probing@2")
    assert new.source == user / "ghost_probing.v4.yaml" and new.source.exists()
    assert lib.get("ghost_probing") is new and lib.detect_default() is new
    assert new.system == base.system and new.answer_schema == base.answer_schema
    assert load_template(new.source).hash == new.hash
    reloaded = PromptLibrary.load([BUNDLED_DIR, user])
    assert reloaded.get("ghost_probing@4").hash == new.hash
    d = diff(base, new)
    assert d.startswith("--- ghost_probing@2") and "+  “鬼探头”的定义" in d and "-  “鬼探头”的定义" in d
    assert diff(base, base) == ""
    with pytest.raises(PromptError, match="asks the same as ghost_probing@2"):
        lib.save_new_version(base, notes="只改备注", dir=user)
    with pytest.raises(PromptError, match="asks the same as ghost_probing@4"):
        lib.save_new_version(base, user=new.user, dir=user)
    with pytest.raises(PromptError, match="ghost_probing@3 already exists"):
        lib.save_new_version(base, system="新的系统提示", version=3, dir=user)
    with pytest.raises(PromptError, match="unknown variable \\{speed\\}"):
        lib.save_new_version(base, user=base.user + "{speed}", dir=user)
    assert sorted(p.name for p in user.iterdir()) == ["ghost_probing.v4.yaml"]
    few = lib.save_new_version(new, few_shot="示例：略", version=7, dir=user)
    assert few.ref == "ghost_probing@7" and few.render(VARS)[0]["content"].endswith("示例：略")


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    from webapp.cli import main

    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_prompts_list_and_show(capsys):
    rc, out, _ = run_cli(capsys, "prompts", "list", "--json")
    assert rc == 0
    items = json.loads(out)
    refs = {f"{i['id']}@{i['version']}" for i in items}
    assert {"ghost_probing@1", "ghost_probing@2", "ghost_probing@3", "chat@1"} <= refs
    assert all({"id", "version", "hash", "language", "kind", "title", "parent"} <= set(i) for i in items)
    rc, out, _ = run_cli(capsys, "prompts", "list")
    assert rc == 0 and "ghost_probing@2" in out and "← ghost_probing@1" in out

    rc, out, _ = run_cli(capsys, "prompts", "show", "ghost_probing@1")
    assert rc == 0 and yaml.safe_load(out)["title"] == "直接结构化提问"
    h = next(i["hash"] for i in items if i["id"] == "ghost_probing" and i["version"] == 2)
    rc, out, _ = run_cli(capsys, "prompts", "show", h[:8], "--json")
    assert rc == 0 and json.loads(out)["version"] == 2
    rc, out, _ = run_cli(capsys, "prompts", "diff", "ghost_probing@2", "ghost_probing@3")
    assert rc == 0 and "+++ ghost_probing@3" in out

    rc, out, err = run_cli(capsys, "prompts", "show", "nosuch")
    assert rc == 2 and out == ""
    assert err.startswith("ghostprobe: no prompt matches 'nosuch'") and err.count("\n") == 1


def test_cli_verdict_parse(capsys, tmp_path, monkeypatch):
    answer = tmp_path / "answer.txt"
    answer.write_text('好的。\n```json\n{"是否鬼探头": "是", "置信度": "87%", "危险等级": "高", "目标类型": "行人", '
                      '"出现时间": "2.5秒", "理由": "行人从公交车后冲出"}\n```', encoding="utf-8")
    rc, out, _ = run_cli(capsys, "verdict", "parse", str(answer), "--json")
    assert rc == 0
    assert json.loads(out) == {"ghost_probing": True, "confidence": 0.87, "danger_level": "high",
                               "object_type": "pedestrian", "onset_s": 2.5, "reason": "行人从公交车后冲出",
                               "status": "ok", "raw": answer.read_text(encoding="utf-8")}
    rc, out, _ = run_cli(capsys, "verdict", "parse", str(answer))
    assert rc == 0 and out.startswith("鬼探头：是（置信度 0.87，危险等级 高，目标 行人，出现于 2.5 秒）")

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("可能有吧".encode())))
    rc, out, _ = run_cli(capsys, "verdict", "parse", "-")
    assert rc == 0 and "无法解析" in out and "不计为“否”" in out
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("否，没有鬼探头".encode())))
    rc, out, _ = run_cli(capsys, "verdict", "parse", "-", "--json")
    assert json.loads(out)["ghost_probing"] is False

    rc, out, err = run_cli(capsys, "verdict", "parse", str(tmp_path / "missing.txt"))
    assert rc == 2 and "missing.txt does not exist." in err and err.count("\n") == 1
    rc, out, err = run_cli(capsys, "verdict", "parse", str(tmp_path))
    assert rc == 2 and "is a folder" in err


def test_cli_as_a_real_process(tmp_path):
    exe = ROOT / ".venv" / "bin" / "ghostprobe"
    if not exe.exists():
        pytest.skip("the ghostprobe console script is not installed in .venv")
    env = {**os.environ, "GHOSTPROBE_DATA_DIR": str(tmp_path / "data")}
    env.pop("GHOSTPROBE_PROMPTS", None)
    ok = subprocess.run([str(exe), "prompts", "list", "--json"], cwd=tmp_path, env=env, capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "ghost_probing" in {i["id"] for i in json.loads(ok.stdout)}
    bad = subprocess.run([str(exe), "prompts", "show", "nosuch"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.startswith("ghostprobe: no prompt matches") and "Traceback" not in bad.stderr
