"""HTML report (offline, escaped, charts drawn in real Chromium), Markdown summary, CSV/Parquet export."""

from __future__ import annotations

import io
import re

import duckdb
import numpy as np
import pytest

from engines.types import Verdict
from reports import export as X
from reports.costs import set_price
from reports.runs import add_prediction, create_run, finish_run

EVIL = '<script>alert("pwned")</script><img src=x onerror="alert(1)">'


def _labels(store, name, n):
    with store.write() as cur:
        cur.execute("INSERT INTO label_sets (name, source) VALUES (?, 'test')", [name])
        for i in range(n):
            cur.execute("INSERT INTO labels (label_set, video_id, ghost_probing, kind) VALUES (?, ?, ?, ?)",
                        [name, f"v{i:02d}.avi", i % 2 == 0, "ghost_probing" if i % 2 == 0 else "none"])


def _populate(store):
    """Three runs on 12 labelled videos: 9/12 right with confidences; one with a hostile name and answer;
    one imported without latency (cost unknown)."""
    _labels(store, "dev12", 12)
    rng = np.random.default_rng(0)
    a = create_run(store, engine="baseline", prompt=("ghost_probing", "3", "h3"), label_set="dev12",
                   location="azure:Standard_NC24s_v3:eastus", name="baseline-v3")
    for i in range(12):
        truth = i % 2 == 0
        pred = truth if i < 9 else not truth
        add_prediction(store, a, f"v{i:02d}.avi", None,
                       Verdict(ghost_probing=pred, confidence=float(rng.uniform(0.5, 1)), status="ok", raw="{}"),
                       {"latency_s": 1.0 + i / 10})
    finish_run(store, a)
    b = create_run(store, engine="openai", model="gpt-4o", prompt=("ghost_probing", "2", "h2"), label_set="dev12",
                   location="local-cuda", name=EVIL)
    for i in range(12):
        v = Verdict(status="unparsed", raw=EVIL, reason=EVIL) if i == 0 else \
            Verdict(ghost_probing=i % 2 == 0, status="ok", raw="ok")
        add_prediction(store, b, f"v{i:02d}.avi", None, v, {"latency_s": 2.0})
    finish_run(store, b)
    c = create_run(store, engine="external", label_set="dev12", status="imported", name="peer")
    for i in range(12):
        add_prediction(store, c, f"v{i:02d}.avi", None, Verdict(ghost_probing=True, status="ok", raw="ghost probing"))
    return a, b, c


def test_decision_rule_on_the_interval():
    d = X.decide(0.75, [0.468, 0.911], 12, "dev12")
    assert d["decision"] is None and d["bands"] == ["collect", "improve", "deploy"]
    assert d["text"] == ("point estimate 75% (95% CI 47–91%, n=12, label set dev12): the interval spans all three "
                         "bands, more labelled videos needed to decide.")
    assert X.decide(0.86, [0.82, 0.89], 500)["decision"] == "deploy"
    assert X.decide(0.70, [0.64, 0.76], 300)["decision"] == "improve"
    assert "improve prompts or use a larger model" in X.decide(0.70, [0.64, 0.76], 300)["text"]
    assert X.decide(0.40, [0.31, 0.50], 100)["decision"] == "collect"
    two = X.decide(0.80, [0.70, 0.88], 100)
    assert two["decision"] is None and two["bands"] == ["improve", "deploy"]
    assert X.decide(None, None, 0)["decision"] is None


def test_html_is_self_contained_and_escaped(store, tmp_path):
    a, b, c = _populate(store)
    paths = X.write_report(store, tmp_path / "report.html", lang="en")
    text = open(paths["html"], encoding="utf-8").read()
    # plotly.js inlined exactly once, no external script
    assert len(re.findall(r"plotly\.js v\d", text)) == 1
    assert not re.search(r"<script[^>]+src=", text)
    # hostile text only ever appears escaped
    assert "<script>alert(" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(" in text
    # measured figures with label set, n and interval; the seed's rule on the interval
    assert "75% [47%–91%]" in text
    assert ("point estimate 75% (95% CI 47–91%, n=12, label set dev12): the interval spans all three bands, "
            "more labelled videos needed to decide.") in text
    assert "unknown" in text  # local-cuda has no price and the imported run has no latency
    md = open(paths["markdown"], encoding="utf-8").read()
    assert "| baseline-v3 |" in md and "75% [47%–91%]" in md and "more labelled videos needed" in md
    # a user-set price turns unknown into a measured cost
    set_price(store, "local", "local-cuda", usd_per_hour=3.6)
    assert "$0.0240" in X.build_html(store, [b], lang="en")  # 12 × 2 s × 3.6 $/h


def test_report_follows_the_language_and_leaves_out_the_db_path(store, tmp_path):
    _populate(store)
    zh = X.write_report(store, tmp_path / "zh.html", lang="zh")
    en = X.write_report(store, tmp_path / "en.html", lang="en")
    zh_text, en_text = (open(p["html"], encoding="utf-8").read() for p in (zh, en))
    for text in (zh_text, en_text):
        assert str(store.path) not in text and "test.duckdb" not in text  # the server's database stays private
    assert 'lang="zh-CN"' in zh_text and 'lang="en"' in en_text
    assert "点估计 75%（95% 区间 47–91%，n=12，标签集 dev12）：区间跨越" in zh_text
    assert "需要更多标注视频才能决定" in zh_text and "more labelled videos needed" not in zh_text
    assert "成本未知" in zh_text and "Cost unknown" not in zh_text and "cost unknown" not in zh_text
    assert "<th>准确率 [95% CI]</th>" in zh_text and "<th>accuracy [95% CI]</th>" in en_text
    assert "more labelled videos needed to decide" in en_text and "点估计" not in en_text
    zh_md = open(zh["markdown"], encoding="utf-8").read()
    assert "| 运行 | 名称 |" in zh_md and "需要更多标注视频" in zh_md
    with pytest.raises(Exception, match="zh or en"):
        X.build_html(store, lang="fr")


def test_partial_run_shows_scored_over_planned_in_html_and_csv(store, tmp_path):
    _labels(store, "dev12", 12)
    rid = create_run(store, engine="baseline", label_set="dev12", name="nine-of-twelve",
                     selection=[f"v{i:02d}.avi" for i in range(12)])
    for i in range(9):
        add_prediction(store, rid, f"v{i:02d}.avi", None, Verdict(ghost_probing=i % 2 == 0, status="ok", raw="{}"),
                       {"latency_s": 1.0})
    finish_run(store, rid)
    full = create_run(store, engine="baseline", label_set="dev12", name="all-twelve",
                      selection=[f"v{i:02d}.avi" for i in range(12)])
    for i in range(12):
        add_prediction(store, full, f"v{i:02d}.avi", None, Verdict(ghost_probing=i % 2 == 0, status="ok", raw="{}"),
                       {"latency_s": 1.0})
    finish_run(store, full)
    en = X.build_html(store, lang="en")
    row = re.search(rf'<tr data-run="{rid}">(.*?)</tr>', en).group(1)
    assert "<td>partial</td>" in row and "9/12 (3 without an answer)" in row
    row_full = re.search(rf'<tr data-run="{full}">(.*?)</tr>', en).group(1)
    assert "<td>done</td>" in row_full and '<td class="coverage">12/12</td>' in row_full
    zh = X.build_html(store, lang="zh")
    assert "9/12（3 个没有回答）" in zh and "部分完成" in zh
    paths = X.export_tables(store, tmp_path / "csv", "csv")
    got = {r[0]: r[1:] for r in duckdb.connect().execute(
        "SELECT run_id, status, planned, scored, missing, coverage FROM read_csv_auto(?)", [paths[0]]).fetchall()}
    assert got[rid] == ("partial", 12, 9, 0, "9/12") and got[full] == ("done", 12, 12, 0, "12/12")


@pytest.mark.browser
def test_report_opens_offline_in_chromium_with_charts_drawn(store, tmp_path, page):
    _populate(store)
    out = tmp_path / "report.html"
    X.write_report(store, out, lang="en")
    errors, dialogs = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.context.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:")
                       else route.continue_())  # offline: anything but the file itself fails
    page.goto(out.as_uri())
    page.wait_for_selector(".plotly .main-svg", timeout=60_000)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 7 && "
                           "[...document.querySelectorAll('.js-plotly-plot')].every(d => d.querySelector('.main-svg'))",
                           timeout=60_000)
    n_svg = page.locator(".plotly .main-svg").count()
    n_plots = page.locator(".js-plotly-plot").count()
    # bars by run, by prompt version, latency, cost, 3 confusion matrices, ROC, PR
    assert n_plots >= 9 and n_svg >= n_plots, (n_plots, n_svg)
    assert errors == [] and dialogs == []
    assert page.locator("text=more labelled videos needed to decide").count() >= 1
    png = page.screenshot(full_page=False)
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    assert img.std() > 10, "the screenshot is blank"
    chart = page.locator(".js-plotly-plot").first.screenshot()
    cimg = np.asarray(Image.open(io.BytesIO(chart)).convert("RGB"), dtype=float)
    assert cimg.std() > 10 and (np.abs(cimg[..., 0] - cimg[..., 2]) > 40).mean() > 0.005  # coloured bars drawn


def test_csv_and_parquet_export(store, tmp_path):
    a, b, c = _populate(store)
    for fmt in ("csv", "parquet"):
        paths = X.export_tables(store, tmp_path / fmt, fmt)
        assert [p.rsplit("/", 1)[-1] for p in paths] == [f"runs.{fmt}", f"predictions.{fmt}"]
        con = duckdb.connect()
        reader = "read_csv_auto" if fmt == "csv" else "read_parquet"
        assert con.execute(f"SELECT count(*) FROM {reader}(?)", [paths[0]]).fetchone()[0] == 3
        cols = [d[0] for d in con.execute(f"SELECT * FROM {reader}(?) LIMIT 0", [paths[1]]).description]
        assert {"run_id", "video_id", "ghost_probing", "status", "raw", "label_ghost_probing", "correct"} <= set(cols)
        assert con.execute(f"SELECT count(*) FROM {reader}(?)", [paths[1]]).fetchone()[0] == 36
        raw, status, gp_null = con.execute(
            f"SELECT raw, status, ghost_probing IS NULL FROM {reader}(?) WHERE run_id = ? AND video_id = 'v00.avi'",
            [paths[1], b]).fetchone()
        assert raw == EVIL and status == "unparsed" and gp_null  # unparsed stays NULL, never "no"
    only = X.export_tables(store, tmp_path / "one", "csv", ["baseline-v3"])
    assert duckdb.connect().execute("SELECT count(*) FROM read_csv_auto(?)", [only[1]]).fetchone()[0] == 12
    with pytest.raises(Exception, match="csv or parquet"):
        X.export_tables(store, tmp_path / "x", "xlsx")


def test_cli_report_and_export(tmp_path, capsys, monkeypatch):
    from reports.store import Store
    from webapp.cli import main

    monkeypatch.setenv("GHOSTPROBE_DATA_DIR", str(tmp_path / "data"))
    db = tmp_path / "r.duckdb"
    s = Store(db)
    _populate(s)
    s.close()
    assert main(["--db", str(db), "report", "--out", str(tmp_path / "out" / "r.html")]) == 0
    assert (tmp_path / "out" / "r.html").stat().st_size > 1_000_000  # plotly.js inlined
    assert (tmp_path / "out" / "r.md").exists()
    # a second report onto the same file is refused (exit 2, one sentence) and leaves both files as they were
    (tmp_path / "out" / "r.md").write_text("keep me")
    before = (tmp_path / "out" / "r.html").read_bytes()
    capsys.readouterr()
    assert main(["--db", str(db), "report", "--out", str(tmp_path / "out" / "r.html")]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert (tmp_path / "out" / "r.html").read_bytes() == before
    assert (tmp_path / "out" / "r.md").read_text() == "keep me"
    # only the Markdown beside it existing is refused too: nothing is half written
    (tmp_path / "out" / "r.html").unlink()
    assert main(["--db", str(db), "report", "--out", str(tmp_path / "out" / "r.html")]) == 2
    assert not (tmp_path / "out" / "r.html").exists()
    assert main(["--db", str(db), "report", "--out", str(tmp_path / "out" / "r.html"), "--force", "--lang", "en"]) == 0
    assert (tmp_path / "out" / "r.md").read_text() != "keep me"
    assert not list((tmp_path / "out").glob(".*.tmp"))
    assert main(["--db", str(db), "export", "--format", "parquet", "--out", str(tmp_path / "pq"), "--json"]) == 0
    assert (tmp_path / "pq" / "predictions.parquet").exists()
    capsys.readouterr()
    assert main(["--db", str(db), "prices", "list", "--json"]) == 0
    import json

    prices = json.loads(capsys.readouterr().out)
    assert any(p["sku"] == "Standard_NC24s_v3" and p["usd_per_hour"] == 12.24 for p in prices)


def test_export_carries_the_anomaly_frames_and_boxes_of_detector_runs(store, tmp_path):
    """A detector's per-frame scores and boxes (AI-VAD, motion map) go out with the rest."""
    from engines.base import Artifacts, Box
    from reports import runs as R
    from reports.vad import save_artifacts

    rid = R.create_run(store, engine="motion", selection=["a.avi"])
    resp = R.add_prediction(store, rid, "a.avi", "s" * 64, Verdict(ghost_probing=True, confidence=0.7, status="ok"),
                            {"latency_s": 1.0})
    arts = Artifacts(tracks={"anomaly": [(0.0, 0.1), (0.5, 0.9)]}, thresholds={"anomaly": 0.5},
                     boxes=[Box(frame=1, t=0.5, x1=1, y1=2, x2=30, y2=40, score=0.9, label="motion")],
                     extra={"frame_indices": [0, 1]})
    save_artifacts(store, resp, arts)
    paths = X.export_tables(store, tmp_path / "out", "csv", [rid])
    names = [p.rsplit("/", 1)[-1] for p in paths]
    assert names == ["runs.csv", "predictions.csv", "vad_frames.csv", "vad_boxes.csv"]
    con = duckdb.connect()
    frames = con.execute("SELECT run_id, video_id, frame, score FROM read_csv_auto(?) ORDER BY frame",
                         [paths[2]]).fetchall()
    assert frames == [(rid, "a.avi", 0, 0.1), (rid, "a.avi", 1, 0.9)]
    box = con.execute("SELECT frame, x2, score, label FROM read_csv_auto(?)", [paths[3]]).fetchone()
    assert box == (1, 30.0, 0.9, "motion")
