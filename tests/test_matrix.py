"""reports.matrix: the Prompt Lab's videos × runs matrix as a pure function (plain dicts in, rows out)."""

from __future__ import annotations

from reports import matrix as MX
from reports.labels import video_key

LABELS = [{"video_id": "images_1_001", "ghost_probing": True, "kind": "ghost_probing", "onset_s": 2.0},
          {"video_id": "images_1_002", "ghost_probing": False, "kind": "none", "onset_s": None},
          {"video_id": "images_1_003", "ghost_probing": False, "kind": "cut_in", "onset_s": 1.0}]


def _p(vid, status="ok", gp=None, conf=None):
    return {"video_id": vid, "status": status, "ghost_probing": gp, "confidence": conf}


def test_every_class_and_the_label_order():
    runs = [{"run_id": "A"}, {"run_id": "B"}]
    preds = {"A": [_p("images_1_001.avi", gp=True), _p("images_1_002.avi", gp=True), _p("images_1_003.avi", "unparsed")],
             "B": [_p("images_1_001.avi", "error")]}
    rows = MX.build(LABELS, runs, preds, key=video_key)
    assert [r["video_id"] for r in rows] == ["images_1_001", "images_1_002", "images_1_003"]
    grid = [[c["class"] for c in r["cells"]] for r in rows]
    # A: right, wrong, unparsed (never "no"); B: error, then no prediction at all
    assert grid == [["right", "error"], ["wrong", "missing"], ["unparsed", "missing"]]
    assert rows[0]["cells"][0]["prediction"]["video_id"] == "images_1_001.avi"  # matched by video_key
    counts = MX.column_counts(rows, ["A", "B"])
    assert counts["A"] == {"right": 1, "wrong": 1, "unparsed": 1, "error": 0, "unlabelled": 0, "missing": 0,
                           "planned": 3, "scored": 3}
    assert counts["B"]["error"] == 1 and counts["B"]["missing"] == 2 and counts["B"]["scored"] == 0


def test_a_run_scored_on_another_set_is_compared_with_this_sets_label():
    # the same answers, read against labels that say the opposite: right becomes wrong
    flipped = [{**r, "ghost_probing": not r["ghost_probing"]} for r in LABELS]
    preds = {"A": [_p("images_1_001", gp=True), _p("images_1_002", gp=False)]}
    here = [[c["class"] for c in r["cells"]] for r in MX.build(LABELS, [{"run_id": "A"}], preds)]
    there = [[c["class"] for c in r["cells"]] for r in MX.build(flipped, [{"run_id": "A"}], preds)]
    assert here == [["right"], ["right"], ["missing"]] and there == [["wrong"], ["wrong"], ["missing"]]


def test_unlabelled_and_the_correctness_rule():
    assert MX.classify(_p("x", gp=True), None) == "unlabelled"
    assert MX.classify(_p("x", "unparsed"), True) == "unparsed"
    assert MX.classify(None, True) == "missing"
    assert MX.is_correct("ok", True, True) is True and MX.is_correct("ok", False, True) is False
    assert MX.is_correct("unparsed", None, False) is False  # an unparsed answer is wrong, not a "no"
    assert MX.is_correct("ok", True, None) is None


def test_records_for_the_api():
    rows = MX.build(LABELS[:1], [{"run_id": "A"}], {"A": [_p("images_1_001", gp=False)]})
    assert MX.as_records(rows, lambda lr: lr["kind"]) == [{"video_id": "images_1_001", "label": "ghost_probing",
                                                           "A": "wrong"}]
