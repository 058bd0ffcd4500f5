"""Import another system's predictions (CSV, JSONL, JSON) and score them honestly."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from reports.metrics import run_metrics
from reports.predictions_import import PredictionsImportError, import_predictions, read_records
from reports.runs import get_run, predictions

DADA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dada-dev"

_DADA_LABEL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s\s*:\s*(ghost probing|cut-in)\s*$", re.I)


def insert_dada_labels(store, csv_path: Path, name: str = "dada-dev") -> dict[str, bool]:
    """Parse the DADA style (none / <t>s: ghost probing / <t>s: cut-in) here, independently of reports.labels."""
    out = {}
    with store.write() as cur:
        cur.execute("INSERT INTO label_sets (name, source) VALUES (?, 'csv:labels.csv')", [name])
        for row in csv.DictReader(open(csv_path, encoding="utf-8")):
            lab = row["ground_truth_label"].strip()
            if lab.lower() == "none":
                gp, kind, onset = False, "none", None
            else:
                m = _DADA_LABEL.match(lab)
                assert m, lab
                onset = float(m.group(1))
                gp = m.group(2).lower() == "ghost probing"
                kind = "ghost_probing" if gp else "cut_in"
            cur.execute("INSERT INTO labels (label_set, video_id, ghost_probing, kind, onset_s, note) "
                        "VALUES (?, ?, ?, ?, ?, ?)", [name, row["video_id"], gp, kind, onset, row.get("note") or None])
            out[row["video_id"]] = gp
    return out


def _small_labels(store):
    with store.write() as cur:
        cur.execute("INSERT INTO label_sets (name, source) VALUES ('s', 'test')")
        cur.execute("INSERT INTO labels (label_set, video_id, ghost_probing, kind) VALUES "
                    "('s', 'images_1_024.avi', false, 'none'), ('s', 'images_5_046.avi', true, 'ghost_probing'), "
                    "('s', 'images_6_059.avi', false, 'cut_in')")


def test_peer_gpt4o_file_confusion_matrix_equals_hand_count(store):
    if not (DADA / "peer_gpt4o_run8_dev.json").exists():
        pytest.skip("../shared/data/dada-dev is absent")
    insert_dada_labels(store, DADA / "labels.csv")
    s = import_predictions(store, DADA / "peer_gpt4o_run8_dev.json", name="gpt4o-run8", label_set="dada-dev",
                           video_field="video_id", answer_field="key_actions", positive=r"ghost\s*probing",
                           negative=r"\bno\b")
    # Counted by hand from the file: key_actions is "ghost probing" for 11 clips and "no ghost probing"
    # for images_6_059 (a cut-in, labelled not ghost probing). Labels: 6 ghost probing (5_037, 5_046,
    # 5_050, 5_075, 5_077, 6_053), 6 not (1_024, 1_025, 5_017, 5_042, 6_011 none; 6_059 cut-in).
    # TP = 6, FP = 5 (1_024, 1_025, 5_017, 5_042, 6_011), TN = 1 (6_059), FN = 0, unparsed = 0.
    m = run_metrics(store, s["run_id"])
    assert (m["tp"], m["fp"], m["tn"], m["fn"], m["unparsed"], m["errors"]) == (6, 5, 1, 0, 0, 0)
    assert m["n"] == 12 and m["accuracy"] == pytest.approx(7 / 12) and m["label_set"] == "dada-dev"
    assert s["yes"] == 11 and s["no"] == 1 and s["unlabelled"] == 0
    assert m["auroc"] is None and m["auroc_n"] == 0  # the file has no confidences: no ROC from thin air
    run = get_run(store, "gpt4o-run8")
    assert run["status"] == "imported" and run["engine"] == "external"
    # the file's own evaluation column agrees with ours video by video
    peer = {r["video_id"]: r["evaluation"] for r in json.load(open(DADA / "peer_gpt4o_run8_dev.json"))["detailed_results"]}
    for p in predictions(store, s["run_id"]):
        ours = ("T" if p["correct"] else "F") + ("P" if p["ghost_probing"] else "N")
        assert ours == peer[p["video_id"]], p["video_id"]


def test_negative_wins_and_neither_is_unparsed_csv(store, tmp_path):
    _small_labels(store)
    f = tmp_path / "p.csv"
    f.write_text("clip,answer\nimages_1_024,no ghost probing\nimages_5_046,ghost probing at 2s\n"
                 "images_6_059,maybe a car\n", encoding="utf-8")
    s = import_predictions(store, f, name="csv", label_set="s", video_field="clip", answer_field="answer",
                           positive="ghost probing", negative="no ghost")
    rows = {r["video_id"]: r for r in predictions(store, s["run_id"])}
    # ids without extension meet the label set's spelling
    assert set(rows) == {"images_1_024.avi", "images_5_046.avi", "images_6_059.avi"}
    assert rows["images_1_024.avi"]["ghost_probing"] is False
    assert rows["images_5_046.avi"]["ghost_probing"] is True
    assert rows["images_6_059.avi"]["ghost_probing"] is None and rows["images_6_059.avi"]["status"] == "unparsed"
    m = run_metrics(store, s["run_id"])
    assert m["unparsed"] == 1 and m["fp"] == 1  # counted wrong: an unparsed answer on a negative is a FP
    assert m["metrics_both_ways"]["excluded"]["n"] == 2


def test_jsonl_and_nested_json_bfs(store, tmp_path):
    _small_labels(store)
    f = tmp_path / "p.jsonl"
    f.write_text('{"v": "clips/images_5_046.avi", "r": {"a": "是，鬼探头"}, "c": 0.8}\n\n'
                 '{"v": "IMAGES_1_024.AVI", "r": {"a": "否"}}\n', encoding="utf-8")
    s = import_predictions(store, f, name="jl", label_set="s", video_field="v", answer_field="r.a",
                           positive="鬼探头|是", negative="否|没有", confidence_field="c")
    assert (s["yes"], s["no"], s["labelled"]) == (1, 1, 2)
    p = {r["video_id"]: r for r in predictions(store, s["run_id"])}
    assert p["images_5_046.avi"]["confidence"] == 0.8
    g = tmp_path / "p.json"
    g.write_text(json.dumps({"meta": {"tags": ["a", "b"], "deep": {"items": [{"x": 1}]}},
                             "results": [{"id": "images_5_046", "ans": "ghost probing"}]}), encoding="utf-8")
    fmt, recs = read_records(g)
    assert fmt == "json" and recs == [{"id": "images_5_046", "ans": "ghost probing"}]  # depth 1 before depth 3


@pytest.mark.parametrize("content,kwargs,msg", [
    ('{"a": [1, 2', {}, "is not valid JSON"),
    ('[]', {}, "no list of objects"),
    ('[{"video": "images_5_046", "answer": "yes"}]', {"video_field": "vid"}, "has the video field 'vid'"),
    ('[{"video": "images_5_046", "answer": "yes"}]', {"answer_field": "ans"}, "has the answer field 'ans'"),
    ('[{"video": "images_5_046", "answer": "yes"}, {"video": "images_5_046.avi", "answer": "no"}]', {}, "appears twice"),
    ('[{"video": "images_5_046", "answer": "yes"}]', {"positive": "("}, "not a valid regular expression"),
    ('[{"video": "images_5_046", "answer": "yes"}]', {"label_set": "nope"}, "Unknown label set"),
])
def test_bad_files_import_nothing(store, tmp_path, content, kwargs, msg):
    _small_labels(store)
    f = tmp_path / "bad.json"
    f.write_text(content, encoding="utf-8")
    args = dict(name="bad", label_set="s", video_field="video", answer_field="answer", positive="yes")
    args.update(kwargs)
    with pytest.raises(Exception, match=re.escape(msg)) as e:
        import_predictions(store, f, **args)
    assert str(e.value).endswith(".") and "\n" not in str(e.value)
    assert store.scalar("SELECT count(*) FROM runs") == 0
    assert store.scalar("SELECT count(*) FROM predictions") == 0


def test_empty_csv_rejected(store, tmp_path):
    _small_labels(store)
    f = tmp_path / "e.csv"
    f.write_text("video,answer\n", encoding="utf-8")
    with pytest.raises(PredictionsImportError, match="no prediction rows"):
        import_predictions(store, f, name="e", label_set="s", video_field="video", answer_field="answer",
                           positive="yes")
