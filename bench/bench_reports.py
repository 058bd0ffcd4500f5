"""Reports at 1,000,000 predictions: one Reports-tab refresh ≤ 300 ms cold, per click as the browser sees it.

The store is built through the real write path's layout: runs rows (the columns of migration m009, the
selection holding every planned video id) and one ``responses`` row per model call (run_id set, current),
so ``predictions`` is the view the app reads; a few replaced answers and chat turns sit among them.

Figures (one JSON line each, ≥ 3 interleaved repetitions, min and median, target and passed):

- ``click_refresh_server_*``: the Reports tab's own refresh handler (webapp/tabs/reports.py on_refresh:
  every query, table and figure of one click, with one session's record of what its page shows carried from
  call to call, as the app carries it) called in-process; *cold* = right after one new prediction
  was written into the newest run through reports.runs.add_prediction (the first open after new
  predictions), *warm* = the same click again, *first* = an empty cache (the first open after start).
- ``click_refresh_browser_*``: the same click in headless Chromium against the tab served on loopback
  (Gradio's queue, postprocessing and transport included), from the click to the page showing the new
  coverage (cold) or to the event's end (warm); ``*_drawn``: to the frame after the page's last change, every
  chart Plotly redrew included. The tab draws only the open view of its charts (the picker above them;
  准确率, the default, holds the run's confusion matrices): a cold click must also leave that view's chart
  showing the run's new counts (those of the metrics table), or the bench fails.
- ``open_view_browser_*``: picking each other view of the charts right after a new prediction, until the event
  ends and the page is quiet (its charts drawn from the data of that moment); no target in the issue.
- ``query_*``: each query the click runs, with the tab's arguments, cold (after one new prediction) and warm.
- Reference, timed in the same loop: ``SELECT count(*) FROM predictions`` (a scan of the view) and a DuckDB
  aggregate of the whole view (the per-run confusion counts the tab shows, computed from scratch); in the
  browser loop, the cheapest click of the same page (a button whose handler returns one Markdown string).

Target: a refresh ≤ 300 ms cold at 1M predictions. Nothing is written outside a temporary folder.
Usage: python bench/bench_reports.py [--runs 200] [--videos 5000] [--repeats 5] [--no-browser]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_MS = 300.0
VIEWS = ("curves", "latency_cost", "versions")  # the charts' views besides the default (webapp/tabs/reports.py)
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def emit(figure: str, values: list[float] | None = None, unit: str = "ms", target: float | None = None,
         **extra) -> dict:
    line: dict = {"bench": "reports", "figure": figure}
    if values is not None:
        line.update(min=round(min(values), 2), median=round(statistics.median(values), 2), unit=unit,
                    n=len(values))
    if target is not None:
        line.update(target=f"median <= {target:g} {unit}", passed=bool(values) and statistics.median(values) <= target)
    line.update(extra)
    line.update(loadavg_1m=round(os.getloadavg()[0], 2), cpus=os.cpu_count())
    print(json.dumps(line, ensure_ascii=False), flush=True)
    return line


def ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


# -- the store ----------------------------------------------------------------------------------------------
def build(store, n_runs: int, n_videos: int, newest_answered: int) -> list[str]:
    """Label set + runs + n_runs × n_videos responses in bulk SQL; the newest run is still being evaluated
    (``newest_answered`` of its videos answered), so each new prediction shows in its coverage."""
    engines_ = ["baseline", "transformers", "openai", "external"]
    kinds = {"baseline": "detector", "transformers": "chat", "openai": "chat", "external": None}
    models = {"baseline": None, "transformers": "Qwen/Qwen2.5-VL-7B-Instruct", "openai": "gpt-4o", "external": None}
    locations = {"baseline": "local-cpu", "transformers": "azure:Standard_NC24ads_A100_v4:eastus",
                 "openai": "openai:gpt-4o", "external": None}
    rows = []
    for k in range(n_runs):
        e = engines_[k % 4]
        det = kinds[e] == "detector"
        rows.append([f"r20260101-{k // 3600:02d}{(k // 60) % 60:02d}{k % 60:02d}-{k:04x}", f"bench-{k}", e, kinds[e],
                     models[e], None if det else "ghost_probing", None if det else str(1 + k % 5),
                     None if det else f"hash{k % 5}", locations[e],
                     "imported" if e == "external" else ("running" if k == n_runs - 1 else "done"), k, k])
    with store.write() as cur:
        cur.execute("INSERT INTO label_sets (name, source) VALUES ('bench', 'bench')")
        cur.execute(f"""INSERT INTO labels (label_set, video_id, ghost_probing, kind, onset_s)
                        SELECT 'bench', 'bench_' || lpad(i::VARCHAR, 6, '0') || '.avi', i % 2 = 0,
                               CASE WHEN i % 2 = 0 THEN 'ghost_probing' ELSE 'none' END,
                               CASE WHEN i % 2 = 0 THEN (i % 9)::DOUBLE END
                        FROM range({n_videos}) t(i)""")
        cur.executemany(f"""
            INSERT INTO runs (run_id, name, engine, engine_kind, model, prompt_id, prompt_version, prompt_hash,
                              label_set, location, status, created_at, finished_at, options, sampling, selection,
                              planned, missing, instances, hidden)
            SELECT ?, ?, ?, ?, ?, ?, ?, ?, 'bench', ?, ?, TIMESTAMP '2026-01-01' + to_seconds(? * 3600),
                   TIMESTAMP '2026-01-01' + to_seconds(? * 3600 + 1800), '{{}}', '{{}}',
                   (SELECT to_json(list(video_id ORDER BY video_id)) FROM labels WHERE label_set = 'bench'),
                   {n_videos}, '[]', 1, false""", rows)
        cur.execute("""CREATE TEMP TABLE bench_runs AS SELECT run_id, engine, engine_kind, model, created_at,
                              row_number() OVER (ORDER BY created_at) - 1 AS k FROM runs""")
        # each run answers every video (the newest: the first ones); accuracy 60–90% by run; 2% unparsed,
        # 1% errors; 5% cached; written in time order, one run after another, as evaluations write them
        cur.execute(f"""
            INSERT INTO responses (created_at, kind, run_id, current, video_id, engine, engine_kind, model,
                                   prompt_hash, response, ghost_probing, confidence, onset_s, reason, status,
                                   latency_s, decode_s, model_s, prompt_tokens, completion_tokens, cached)
            SELECT r.created_at + to_milliseconds(l.i * 10),
                   CASE WHEN r.engine = 'external' THEN 'import' ELSE 'eval' END, r.run_id, true, l.video_id,
                   r.engine, r.engine_kind, r.model, NULL, '{{"ghost_probing": true}}',
                   CASE WHEN u < 0.03 THEN NULL
                        WHEN random() < 0.6 + 0.3 * (r.k % 7) / 6.0 THEN l.ghost_probing ELSE NOT l.ghost_probing END,
                   CASE WHEN u < 0.03 THEN NULL ELSE 0.5 + random() / 2 END,
                   CASE WHEN l.ghost_probing THEN l.onset_s + random() * 2 - 1 END,
                   'bench', CASE WHEN u < 0.01 THEN 'error' WHEN u < 0.03 THEN 'unparsed' ELSE 'ok' END,
                   CASE WHEN r.engine = 'external' THEN NULL ELSE 0.25 + random() * 3 END,
                   CASE WHEN r.engine = 'external' THEN NULL ELSE 0.05 END,
                   CASE WHEN r.engine = 'external' THEN NULL ELSE 0.2 + random() * 3 END,
                   CASE WHEN r.engine = 'openai' THEN 1500 + (random() * 500)::INT END,
                   CASE WHEN r.engine = 'openai' THEN 50 + (random() * 100)::INT END,
                   random() < 0.05
            FROM bench_runs r CROSS JOIN (SELECT *, row_number() OVER (ORDER BY video_id) - 1 AS i, random() AS u
                                          FROM labels WHERE label_set = 'bench') l
            WHERE r.k < {n_runs - 1} OR l.i < {newest_answered}
            ORDER BY r.k, l.video_id""")
        # answers replaced by a rerun of the same video (not current) and chat turns (no run) in the log
        cur.execute("""INSERT INTO responses (kind, run_id, current, video_id, engine, status, latency_s, cached)
                       SELECT 'eval', run_id, false, video_id, engine, 'error', NULL, false FROM responses
                       WHERE run_id IS NOT NULL AND id % 97 = 0""")
        cur.execute("""INSERT INTO responses (kind, chat_id, turn, video_id, engine, question, response, latency_s)
                       SELECT 'chat', 'chat' || (i // 4), i % 4 + 1, 'bench_000001.avi', 'transformers', 'q', 'a', 1.0
                       FROM range(20000) t(i)""")
        cur.execute("DROP TABLE bench_runs")
    return [r[0] for r in rows]


class Writer:
    """Writes the newest run's next video through the real write path (reports.runs.add_prediction)."""

    def __init__(self, store, run_id: str, start: int):
        self.store, self.run_id, self.i = store, run_id, start

    def __call__(self) -> int:
        from engines.types import Verdict
        from reports.runs import add_prediction

        vid = f"bench_{self.i:06d}.avi"
        add_prediction(self.store, self.run_id, vid, None,
                       Verdict(ghost_probing=self.i % 3 == 0, confidence=0.8, status="ok", onset_s=2.0),
                       {"latency_s": 1.25})
        self.i += 1
        return self.i  # answered videos of the newest run now


# -- the tab ------------------------------------------------------------------------------------------------
def reports_blocks(store, tmp: Path):
    """The Reports tab as the app builds it (webapp.tabs.reports.build in a Blocks) and its refresh handler."""
    import gradio as gr

    from webapp.config import load_config
    from webapp.library import Library
    from webapp.state import AppState
    from webapp.tabs import reports as tab

    cfg = load_config(str(store.path))
    state = AppState(config=cfg, store=store, library=Library(cfg, store))
    with gr.Blocks(title="bench") as demo:
        with gr.Tabs():
            with gr.Tab("报告", id="reports", elem_id="tab-reports"):
                tab.build(state, {})
        # the browser reference: the cheapest click this page can make (one Markdown from a constant handler),
        # timed in the same loop, so a figure can be read against what the machine gives any click right now
        ref_btn = gr.Button("ref", elem_id="bench-ref-btn")
        ref_out = gr.Markdown(elem_id="bench-ref-out")
        ref_btn.click(lambda: f"ref {time.time():.3f}", None, ref_out, api_visibility="undocumented")  # as the tab's
    refresh = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "on_refresh")
    args = (tab.ALL, tab.ALL, tab.ALL, tab.ALL, tab.ALL, "", False, "")
    session = {"shown": {}}  # what one browser session's page shows, carried from click to click as the app does

    def click():
        out = refresh(*args, tab.VIEW_DEFAULT, session["shown"], 0, request=None)
        session["shown"] = out[-1]
        return out

    return demo, state, click


def tab_queries(store, state, newest: str):
    """The queries one refresh runs, in the tab's order (webapp/tabs/reports.py on_refresh → on_filter → detail),
    each with the arguments the tab passes. Within a click the tab lists runs once (the runs listing and overview
    are shared by every caller of the click), looks costs up once for the table, the cost chart and the run, and
    draws the prompt-version chart from the overview it has; here each is timed on its own, outside a click."""
    from reports import costs, metrics
    from webapp.tabs import reports as tab

    ids = [r["run_id"] for r in tab.filtered(state)]  # the runs the tab shows (a new prediction changes no id)
    ls = store.scalar("SELECT label_set FROM runs WHERE run_id = ?", [newest])
    return {
        "runs_overview": lambda: metrics.runs_overview(store),
        "runs_listing_coverage": lambda: metrics.runs_listing(store, include_hidden=True, selection=False),
        "runs_costs_filtered": lambda: costs.runs_costs(store, ids),
        "run_metrics_newest": lambda: metrics.run_metrics(store, newest),
        "scored_answers_newest": lambda: metrics.scored_answers(store, newest),
        "latency_by_engine_filtered": lambda: metrics.latency_by_engine(store, ids),
        "by_prompt_version_with_overview": lambda: metrics.by_prompt_version(
            store, label_set=ls, overview=metrics.runs_overview(store)),
    }


def references(store) -> dict:
    cur = store.cursor()
    return {
        "ref_count_view": lambda: cur.execute("SELECT count(*) FROM predictions").fetchall(),
        "ref_duckdb_confusion_all_runs": lambda: cur.execute(
            """SELECT p.run_id, l.ghost_probing, p.status, p.ghost_probing, count(*)
               FROM predictions p JOIN runs r USING (run_id)
               LEFT JOIN labels l ON l.label_set = r.label_set AND l.video_id = p.video_id GROUP BY ALL""").fetchall(),
    }


# -- the browser ----------------------------------------------------------------------------------------------
# Click; the event has ended once the output's status tracker has been pending and is no longer (two frames
# later: painted). The page has finished once nothing in it changed for QUIET_MS after that: the click's time
# "drawn" runs to the frame after the page's last change (the last chart Plotly drew), the quiet wait excluded.
QUIET_MS = 400
CLICK_JS = """([button, output, quiet]) => new Promise((resolve, reject) => {
  const root = document.querySelector(output); const t = {busy: false, ended: null, painted: null};
  const check = () => {
    if (t.ended === null || performance.now() - t.last < quiet) return;
    obs.disconnect(); clearInterval(t.poll); clearTimeout(t.timer);
    resolve({ended: t.ended - t.start, drawn: Math.max(t.ended, t.painted) - t.start});
  };
  const obs = new MutationObserver(() => {
    t.last = performance.now();
    requestAnimationFrame(() => { t.painted = performance.now(); });
    const busy = !!root.querySelector('[data-testid=status-tracker]:not(.hide)');
    if (busy) { t.busy = true; return; }
    if (t.busy && t.ended === null) {
      requestAnimationFrame(() => requestAnimationFrame(() => { t.ended = performance.now(); }));
    }
  });
  obs.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
  t.poll = setInterval(check, 20);
  t.timer = setTimeout(() => { obs.disconnect(); clearInterval(t.poll); reject(new Error('no answer within 60 s')); }, 60000);
  t.start = performance.now(); t.last = t.start; document.querySelector(button).click();
})"""


def browser_clicks(demo, write, repeats: int, ref_fns: dict) -> None:
    """Click 刷新 in headless Chromium: cold = after one new prediction, until the coverage shows it;
    warm = again, until the event's stream ends and the page has painted."""
    import socket

    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.queue()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                show_error=False)
    url = f"http://127.0.0.1:{port}/?__theme=light"
    cold, warm, cold_drawn, warm_drawn, load, ref, ref_click = [], [], [], [], [], [], []
    views: dict[str, list[float]] = {v: [] for v in VIEWS}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            t0 = time.perf_counter()
            page.goto(url)
            page.wait_for_function("() => (document.querySelector('#rep-metrics') || {}).innerText?.includes('/')",
                                   timeout=120_000)
            load.append((time.perf_counter() - t0) * 1000)
            page.wait_for_timeout(500)

            def click_until_done(changes: bool) -> dict:
                """In-page times from the click: the event's end (pending over, + 2 frames) and the last change
                the page drew (charts included)."""
                before = page.inner_text("#rep-metrics")
                took = page.evaluate(CLICK_JS, ["#rep-refresh", "#rep-runs-empty", QUIET_MS])
                if changes and page.inner_text("#rep-metrics") == before:
                    raise RuntimeError("the refresh did not show the new prediction")
                if changes:
                    check_open_view()
                return took

            def check_open_view() -> None:
                """The open view (the confusion matrices) shows the counts the metrics table shows now."""
                counts = re.search(r"TP / FP / TN / FN\s+(\d+) / (\d+) / (\d+) / (\d+)", page.inner_text("#rep-metrics"))
                drawn = page.evaluate("() => document.querySelector('#rep-chart-confusion .gp-cm-pair')?.innerText || ''")
                want = [f"{k} {v}" for k, v in zip(("TP", "FP", "TN", "FN"), counts.groups())] if counts else ["?"]
                if not all(w in drawn for w in want):
                    raise RuntimeError(f"the open view does not show the run's counts {want}: {drawn[:200]!r}")

            for _ in range(repeats):
                ref.append(ms(ref_fns["ref_count_view"]))
                ref_click.append(page.evaluate(CLICK_JS, ["#bench-ref-btn", "#bench-ref-out", QUIET_MS])["drawn"])
                write()
                c = click_until_done(True)
                w = click_until_done(False)
                cold.append(c["ended"]), cold_drawn.append(c["drawn"])
                warm.append(w["ended"]), warm_drawn.append(w["drawn"])
            # each other view of the charts, opened right after a new prediction (then back to the default)
            for _ in range(repeats):
                for v in VIEWS:
                    write()
                    views[v].append(page.evaluate(CLICK_JS, [f"#rep-view-pick input[value='{v}']", "#rep-status",
                                                             QUIET_MS])["drawn"])
                page.evaluate(CLICK_JS, ["#rep-view-pick input[value='accuracy']", "#rep-status", QUIET_MS])
            browser.close()
    finally:
        demo.close()
    emit("ref_click_trivial_browser", ref_click,
         note="click → a one-Markdown handler's answer drawn: the floor of any click on this machine now")
    emit("click_refresh_browser_cold", cold, target=TARGET_MS,
         note="click → the page shows the new coverage (the event's pending state ends, + 2 frames)")
    emit("click_refresh_browser_cold_drawn", cold_drawn, target=TARGET_MS,
         vs_ref_click_trivial=round(statistics.median(cold_drawn) / statistics.median(ref_click), 2),
         note=f"click → the frame after the page's last change (the open view's chart drawn; {QUIET_MS} ms quiet after)")
    emit("click_refresh_browser_warm", warm, target=TARGET_MS, note="click → pending state ends + 2 frames")
    emit("click_refresh_browser_warm_drawn", warm_drawn, target=TARGET_MS,
         note="click → the frame after the page's last change")
    for v, vals in views.items():
        emit(f"open_view_browser_{v}", vals, note="pick the view after a new prediction → the frame after the page's "
                                                  f"last change (its charts drawn; {QUIET_MS} ms quiet after)")
    emit("page_load_reports_tab_browser", load, note="goto → first refresh painted (cache filled at build)")
    emit("ref_count_view_in_browser_loop", ref)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--videos", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()
    if args.repeats < 3:
        ap.error("at least 3 repetitions")
    tmp = Path(tempfile.mkdtemp(prefix="gp-bench-reports-"))
    os.environ["GHOSTPROBE_DATA_DIR"] = str(tmp / "data")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    for k in ("GHOSTPROBE_DB", "GHOSTPROBE_UPLOADS", "GHOSTPROBE_CACHE", "GHOSTPROBE_LIBRARY"):
        os.environ.pop(k, None)
    try:
        from reports import metrics
        from reports.store import Store

        store = Store(tmp / "data" / "bench.duckdb")
        t0 = time.perf_counter()
        answered = args.videos - 1000 if args.videos > 2000 else args.videos // 2
        run_ids = build(store, args.runs, args.videos, answered)
        store.cursor().execute("CHECKPOINT")  # measure a database at rest, as the dashboard opens it
        n = store.scalar("SELECT count(*) FROM predictions")
        emit("build_store", [time.perf_counter() - t0], "s", predictions=n, runs=len(run_ids),
             responses=store.scalar("SELECT count(*) FROM responses"))
        newest = run_ids[-1]
        write = Writer(store, newest, answered)
        demo, state, click = reports_blocks(store, tmp)
        refs = references(store)
        queries = tab_queries(store, state, newest)

        # interleaved: reference, first open (empty cache), cold click, warm click — per repetition
        first, cold, warm, r_count, r_agg = [], [], [], [], []
        q_cold: dict[str, list[float]] = {k: [] for k in queries}
        q_warm: dict[str, list[float]] = {k: [] for k in queries}
        for _ in range(args.repeats):
            r_count.append(ms(refs["ref_count_view"]))
            r_agg.append(ms(refs["ref_duckdb_confusion_all_runs"]))
            metrics.clear_cache(store)
            first.append(ms(click))
            write()
            cold.append(ms(click))
            warm.append(ms(click))
            for name, fn in queries.items():  # each query cold: one new prediction just before it
                write()
                q_cold[name].append(ms(fn))
                q_warm[name].append(ms(fn))
        common = {"predictions": store.scalar("SELECT count(*) FROM predictions"), "runs": len(run_ids)}
        emit("ref_count_view", r_count, **common)
        emit("ref_duckdb_confusion_all_runs", r_agg, **common)
        emit("click_refresh_server_cold", cold, target=TARGET_MS,
             vs_ref_duckdb_confusion=round(statistics.median(cold) / statistics.median(r_agg), 2),
             note="the tab's on_refresh after one new prediction (add_prediction) in the newest run", **common)
        emit("click_refresh_server_warm", warm, target=TARGET_MS, **common)
        emit("click_refresh_server_first_open", first, note="empty cache: every run aggregated (no target)",
             vs_ref_duckdb_confusion=round(statistics.median(first) / statistics.median(r_agg), 2), **common)
        for name in queries:
            emit(f"query_{name}_cold", q_cold[name], target=TARGET_MS, **common)
            emit(f"query_{name}_warm", q_warm[name], target=TARGET_MS, **common)
        if not args.no_browser:
            if not Path(CHROMIUM).exists():
                emit("click_refresh_browser", None, skipped=f"{CHROMIUM} not found")
            else:
                browser_clicks(demo, write, args.repeats, refs)
        store.close()
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
