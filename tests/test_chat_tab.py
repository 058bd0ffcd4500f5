"""The Chat & Detect path without a browser: webapp.detection on a real tiny model, a real clip and a real
DuckDB file, plus the tab's pure rendering helpers and a build of the whole app."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import tiny_models  # noqa: E402
from engines.base import GenerationOptions  # noqa: E402
from engines.errors import EngineError, VideoError  # noqa: E402
from engines.types import Verdict  # noqa: E402
from reports.chats import turns  # noqa: E402
from webapp import detection as D  # noqa: E402
from webapp.tabs import chat as C  # noqa: E402

ENV_KEYS = ("GHOSTPROBE_HF_MODEL", "GHOSTPROBE_OPENAI_BASE_URL", "GHOSTPROBE_OPENAI_API_KEY", "OPENAI_API_KEY",
            "GHOSTPROBE_OPENAI_MODEL", "GHOSTPROBE_VIDEOLLAMA2_URL", "GHOSTPROBE_ALLOW_DOWNLOAD")


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    return tiny_models.build("qwen2_5_vl", tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    from media import write_h264_mp4

    return write_h264_mp4(tmp_path_factory.mktemp("clips") / "street.mp4", n_frames=30, fps=10.0)


@pytest.fixture
def hf(monkeypatch, qwen, tmp_path):
    for k in ENV_KEYS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("GHOSTPROBE_HF_MODEL", str(qwen))
    monkeypatch.setenv("GHOSTPROBE_DATA_DIR", str(tmp_path / "data"))
    return qwen


def _opts(n: int) -> GenerationOptions:
    return GenerationOptions(max_new_tokens=n)


# -- detect -----------------------------------------------------------------------------------------

def test_detect_logs_the_whole_call_and_noise_is_unparsed(store, hf, clip_path):
    from prompts import PromptLibrary

    out = D.run_detect(store, engine="transformers", video=clip_path, frames=2, options=_opts(8))
    assert out.verdict.status == "unparsed" and out.verdict.ghost_probing is None  # noise is never a "no"
    assert out.verdict.raw.strip() and out.turn == 1
    lib = PromptLibrary.load(strict=False)
    assert out.prompt_ref == lib.detect_default().ref and out.prompt_hash == lib.detect_default().hash
    [row] = turns(store, out.chat_id)
    assert row["kind"] == "detect" and row["engine"] == "transformers" and row["model"] == str(hf)
    assert row["revision"] and row["prompt_hash"] == out.prompt_hash and row["video_id"] == "street.mp4"
    assert row["sampling"]["num_frames"] == 2 and row["options"]["max_new_tokens"] == 8
    assert row["latency_s"] > 0 and row["decode_s"] >= 0 and row["prompt_tokens"] > 0 and row["completion_tokens"] == 8
    assert row["verdict"]["status"] == "unparsed" and row["answer"] == out.verdict.raw and row["error"] is None
    d = out.to_dict()
    assert all(k in d for k in D.VERDICT_FIELDS) and d["call"]["completion_tokens"] == 8 and d["chat_id"] == out.chat_id


def test_an_older_prompt_version_can_be_chosen(store, hf, clip_path):
    out = D.run_detect(store, engine="transformers", video=clip_path, prompt="ghost_probing@1", frames=2, options=_opts(4))
    assert out.prompt_ref == "ghost_probing@1"
    with pytest.raises(D.DetectionError, match="chat prompt"):
        D.run_detect(store, engine="transformers", video=clip_path, prompt="chat", frames=2, options=_opts(4))


def test_failures_are_logged_as_error_turns_and_raised(store, hf, clip_path, tmp_path):
    from media import write_text_renamed

    with pytest.raises(EngineError, match="Unknown engine"):
        D.run_detect(store, engine="no-such-engine", video=clip_path, chat_id="c-unknown")
    with pytest.raises(EngineError, match="GHOSTPROBE_OPENAI"):
        D.run_detect(store, engine="openai", video=clip_path, chat_id="c-openai")
    bad = write_text_renamed(tmp_path / "notes.mp4")
    with pytest.raises(VideoError):
        D.run_detect(store, engine="transformers", video=bad, chat_id="c-bad", frames=2)
    with pytest.raises(D.DetectionError, match="at least 1"):
        D.run_detect(store, engine="transformers", video=clip_path, chat_id="c-frames", frames=0)
    for cid in ("c-unknown", "c-openai", "c-bad", "c-frames"):
        [row] = turns(store, cid)
        assert row["kind"] == "detect" and row["error"] and "\n" not in row["error"] and row["answer"] is None
    # the unknown engine took no prompt; the others are prompt-taking engines: the prompt is on the turn
    assert turns(store, "c-unknown")[0]["prompt_hash"] is None
    assert all(turns(store, c)[0]["prompt_hash"] for c in ("c-openai", "c-bad", "c-frames"))
    # failures before any call carry no verdict; the unreadable video is an error answer of the pipeline
    assert all(turns(store, c)[0]["verdict"] is None for c in ("c-unknown", "c-openai", "c-frames"))
    bad_row = turns(store, "c-bad")[0]
    assert bad_row["verdict"]["status"] == "error" and bad_row["verdict"]["ghost_probing"] is None
    assert bad_row["video_id"] == "notes.mp4"


# -- chat -------------------------------------------------------------------------------------------

def test_follow_ups_carry_the_conversation_and_stop_logs_the_partial_answer(store, hf, clip_path, tmp_path):
    first = D.ChatTurn(store, engine="transformers", video=clip_path, question="画面里有什么？", frames=2, options=_opts(6))
    pieces = list(first)
    assert len(pieces) >= 2 and first.turn == 1 and first.answer == "".join(pieces)
    assert first.call.prompt_tokens > 0 and first.call.decode_s is not None

    follow = D.ChatTurn(store, engine="transformers", video=clip_path, question="左边呢？", chat_id=first.chat_id,
                        frames=2, options=_opts(6))
    list(follow)
    assert follow.turn == 2 and follow.call.prompt_tokens > first.call.prompt_tokens  # earlier turn sent along
    assert D.chat_context(store, first.chat_id, "street.mp4") == [
        {"role": "user", "content": "画面里有什么？"}, {"role": "assistant", "content": first.answer},
        {"role": "user", "content": "左边呢？"}, {"role": "assistant", "content": follow.answer}]

    stopped = D.ChatTurn(store, engine="transformers", video=clip_path, question="继续", chat_id=first.chat_id,
                         frames=2, options=_opts(400))
    it = iter(stopped)
    got = [next(it), next(it), next(it)]
    it.close()  # what Gradio does to the handler's generator when Stop cancels the event
    row = turns(store, first.chat_id)[-1]
    assert row["turn"] == 3 and row["error"] == D.STOPPED and row["answer"] == "".join(got)
    assert row["latency_s"] > 0 and row["completion_tokens"] is None  # not measured: not invented
    assert len(D.chat_context(store, first.chat_id, "street.mp4")) == 4  # a stopped answer is not context

    with pytest.raises(D.DetectionError, match="is about street.mp4"):
        list(D.ChatTurn(store, engine="transformers", video=clip_path, video_id="other.mp4", question="?",
                        chat_id=first.chat_id, frames=2, options=_opts(2)))


def test_an_empty_question_asks_the_chat_prompts_default(store, hf, clip_path):
    from prompts import PromptLibrary

    t = D.ChatTurn(store, engine="transformers", video=clip_path, question="  ", frames=2, options=_opts(3))
    list(t)
    assert t.question == PromptLibrary.load(strict=False).chat_default().user.strip()
    assert turns(store, t.chat_id)[0]["question"] == t.question


def test_chat_with_an_unavailable_engine_is_an_error_turn(store, hf, clip_path):
    t = D.ChatTurn(store, engine="videollama2", video=clip_path, question="你好")
    with pytest.raises(EngineError):
        list(t)
    [row] = turns(store, t.chat_id)
    assert row["kind"] == "chat" and row["error"] == t.error and row["question"] == "你好"


# -- rendering ---------------------------------------------------------------------------------------

def test_the_verdict_card_never_shows_unparsed_or_error_as_no():
    unparsed = C.verdict_card_html(Verdict(raw="kalon mipor").to_dict())
    assert "无法解析 (unparsed)" in unparsed and "不算作“否”" in unparsed
    assert ">否<" not in unparsed and 'data-status="unparsed"' in unparsed
    err = C.verdict_card_html(Verdict.error("The endpoint is down.").to_dict())
    assert "出错" in err and ">否<" not in err and "The endpoint is down." in err
    no = C.verdict_card_html(Verdict(ghost_probing=False, status="ok", danger_level="low").to_dict())
    assert ">否<" in no and "低" in no


def test_the_verdict_card_shows_every_field_and_escapes_model_text():
    v = Verdict(ghost_probing=True, confidence=0.87, danger_level="high", object_type="pedestrian", onset_s=2.25,
                reason="<script>alert(1)</script> 行人从货车后冲出", status="ok", raw="{}").to_dict()
    card = C.verdict_card_html(v, "ghost_probing@3")
    for text in (">是<", "0.87", "高", "行人", "2.2 s", "行人从货车后冲出", "ghost_probing@3"):
        assert text in card
    assert "<script>" not in card and "&lt;script&gt;" in card


def test_transcript_marks_detect_error_and_stopped_turns():
    rows = [
        {"kind": "chat", "question": "q1", "answer": "a1", "error": None},
        {"kind": "chat", "question": "q2", "answer": "half", "error": D.STOPPED},
        {"kind": "chat", "question": "q3", "answer": None, "error": "The server is down."},
        {"kind": "detect", "question": "…", "answer": "noise", "error": None,
         "verdict": Verdict(raw="noise").to_dict()},
        {"kind": "detect", "question": "…", "answer": None, "error": "No model configured.", "verdict": None},
    ]
    m = C.turns_to_messages(rows)
    assert [x["role"] for x in m] == ["user", "assistant"] * 5
    assert m[1]["content"] == "a1" and "已停止" in m[3]["content"] and m[3]["content"].startswith("half")
    assert "⚠️ The server is down." in m[5]["content"]
    assert "无法解析" in m[7]["content"] and "否" not in m[7]["content"].replace("不算作“否”", "")
    assert "No model configured." in m[9]["content"]


def test_history_rows_and_call_line(store, hf, clip_path):
    t = D.ChatTurn(store, engine="transformers", video=clip_path, question="这是哪里？", frames=2, options=_opts(2))
    list(t)
    D.run_detect(store, engine="transformers", video=clip_path, frames=2, options=_opts(2), chat_id=t.chat_id)
    rows, ids = C.history_rows(store, "street.mp4")
    assert ids[0] == t.chat_id and rows[0][1] == 2 and rows[0][2] == "对话+检测" and rows[0][5] == "这是哪里？"
    assert C.history_rows(store, "") == ([], [])
    line = C.call_line(t.call.to_dict(), "transformers", "m", "chat@1", "abcdef0123456789")
    assert "输出 2 token" in line and "chat@1（abcdef012345）" in line and "用时" in line
    assert "用时未测得" in D.call_line_zh(None, "x", None)


def test_track_figure_and_engine_helpers():
    fig = C.track_figure([(0.0, 0.1), (0.5, 0.8), (1.0, 0.2)], onset_s=0.5, threshold=0.5)
    assert list(fig.data[0].y) == [0.1, 0.8, 0.2] and len(fig.layout.shapes) == 2
    assert C._threshold_from_raw('{"threshold": 0.42}') == 0.42 and C._threshold_from_raw("noise") is None
    rows = [{"name": "a", "available": True, "reason": "ready"}, {"name": "b", "available": False, "reason": "No key."}]
    assert C.engine_choices(rows) == [("a", "a"), ("b（不可用）", "b")]
    assert "不可用" in C.engine_info_md(rows[1]) and "No key." in C.engine_info_md(rows[1])

    class Rate:
        default_sampling = {"num_frames": None, "fps": 10.0, "max_side": 320}

    class Count:
        default_sampling = {"num_frames": 8, "fps": None, "max_side": 448}

    assert C.frames_default(Rate) == 0 and "每秒 10 帧" in C.sampling_note(Rate)
    assert C.frames_default(Count) == 8 and "8 帧" in C.sampling_note(Count)


def test_the_app_builds_with_the_chat_tab(env_dirs, hf):
    from reports.store import Store
    from webapp.app import build_app
    from webapp.config import load_config
    from webapp.library import Library
    from webapp.state import AppState

    cfg = load_config()
    st = Store(cfg.db_path)
    try:
        demo = build_app(AppState(config=cfg, store=st, library=Library(cfg, st)))
        ids = {c.get("props", {}).get("elem_id") for c in demo.config["components"]}
        for elem in ("chat-video", "chat-player", "chat-engine", "chat-model", "chat-prompt", "chat-frames",
                     "chat-chatbot", "chat-input", "chat-stop", "chat-clear", "chat-detect", "chat-status",
                     "verdict-card", "verdict-raw", "chat-onset", "chat-history", "chat-track"):
            assert elem in ids, elem
        api_names = {d.get("api_name") for d in demo.config["dependencies"]}
        assert {"detect_video", "chat_history"} <= api_names
    finally:
        st.close()


# -- chat out of the box, both languages ----------------------------------------------------------------

def test_a_detector_cannot_chat_and_says_why_in_either_language(hf):
    from engines.registry import get_engine

    base = get_engine("baseline")
    assert not base.chat_capable
    zh = C.cannot_chat_text("baseline", base, True)
    assert zh == base.can_chat_reason() and "检测鬼探头" in zh and "模型目录" in zh
    en = C.cannot_chat_text("baseline", base, True, lang="en")
    assert "cannot chat" in en and "baseline" in en and "Model catalogue" in en
    tf = get_engine("transformers")
    assert C.cannot_chat_text("transformers", tf, True) is None  # a video LLM takes questions
    off = C.cannot_chat_text("openai", get_engine("openai"), False, "Not configured: set GHOSTPROBE_OPENAI_BASE_URL.")
    assert off.startswith("引擎 openai 现在不可用") and "GHOSTPROBE_OPENAI_BASE_URL" in off


def test_the_verdict_card_transcript_and_call_line_in_english():
    v = Verdict(ghost_probing=True, confidence=0.8, danger_level="medium", object_type="vehicle", onset_s=1.5,
                reason="A car came out from behind a truck.", status="ok", raw="{}").to_dict()
    card = C.verdict_card_html(v, "ghost_probing@2", lang="en")
    for text in ("Ghost probing: ", ">yes<", "Danger level", ">medium<", ">vehicle<", "1.5 s", "Confidence"):
        assert text in card, text
    zh = C.verdict_card_html(v, lang="zh")
    assert ">中<" in zh and ">车辆<" in zh and "是否鬼探头" in zh
    unparsed = C.verdict_card_html(Verdict(raw="kalon").to_dict(), lang="en")
    assert ">unparsed<" in unparsed and "never as “no”" in unparsed and ">no<" not in unparsed
    m = C.turns_to_messages([{"kind": "detect", "verdict": v, "error": None},
                             {"kind": "chat", "question": "q", "answer": "half", "error": D.STOPPED}], lang="en")
    assert m[0]["content"] == "🔍 Detect ghost probing" and "Verdict: **yes**" in m[1]["content"]
    assert "(stopped)" in m[3]["content"]
    line = C.call_line({"latency_s": 1.0, "decode_s": 0.25, "prompt_tokens": 10, "completion_tokens": 5}, "tf", "m",
                       "chat@1", "abcdef0123456789", lang="en")
    assert line == "⏱ engine tf · model m · 1.25 s (decode 0.25), 10 tokens in / 5 out · prompt chat@1 (abcdef012345)"
    assert "Not run yet" in C.no_verdict_html("en") and "尚未检测" in C.no_verdict_html("zh")
    rows = [{"name": "b", "available": False, "reason": "Not configured: set GHOSTPROBE_OPENAI_BASE_URL."}]
    assert C.engine_choices(rows, "en") == [("b (unavailable)", "b")]
    assert "未配置" in C.engine_info_md(rows[0], "zh") and "Not configured" in C.engine_info_md(rows[0], "en")


def test_the_plot_threshold_comes_from_the_detection_outcome():
    class Out:
        threshold = 0.37
        verdict = Verdict(raw='{"threshold": 0.9}')

    class Old:
        verdict = Verdict(raw='{"threshold": 0.42}')

    assert C.outcome_threshold(Out()) == 0.37  # DetectOutcome.threshold wins
    assert C.outcome_threshold(Old()) == 0.42  # older outcomes: the baseline's raw JSON
    fig = C.track_figure([(0.0, 0.1), (1.0, 0.5)], threshold=0.37, lang="en")
    assert fig.layout.xaxis.title.text == "time (s)" and fig.layout.annotations[0].text == "threshold 0.37"


def test_catalogue_choices_mark_pulled_models(tmp_path, monkeypatch):
    from webapp import models as M
    from webapp.config import load_config

    monkeypatch.setenv("GHOSTPROBE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("GHOSTPROBE_MODELS", raising=False)
    cfg = load_config()
    before = dict((v, k) for k, v in C.catalogue_choices(cfg))
    assert set(before) == {m.name for m in M.CATALOGUE} and not any("已下载" in k for k in before.values())
    folder = M.local_path(cfg, M.get("qwen3-vl-2b"))
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / M.MARKER).write_text("{}")
    after = dict((v, k) for k, v in C.catalogue_choices(cfg, "en"))
    assert "✅ pulled" in after["qwen3-vl-2b"] and "Chinese good" in after["qwen3-vl-2b"]
    assert "pulled" not in after["smolvlm2-256m"]
    info = C.catalogue_info_md(cfg, "qwen3-vl-2b", "zh").replace("\\", "")  # Markdown escapes aside
    assert "Qwen/Qwen3-VL-2B-Instruct" in info and str(folder) in info and "使用此模型" in info
