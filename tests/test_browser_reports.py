"""The 报告 (Reports) tab in headless Chromium against the real app, after a real baseline run on the demo clips;
plus the price-table editing path on a real DuckDB store."""

from __future__ import annotations

import re

import pytest

from tests.appserver import RunningApp

RUN_ID = re.compile(r"^r\d{8}-\d{6}-[0-9a-f]{4}$")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    work = tmp_path_factory.mktemp("reports")
    with RunningApp(work) as running:
        yield running


@pytest.fixture(scope="module")
def run_id(app) -> str:
    """One baseline run over the demo label set, made through the app's own API endpoint."""
    from gradio_client import Client

    client = Client(app.url, verbose=False)
    rid = client.predict(label_set="demo", engine="baseline", prompt="", video_ids=[], api_name="/run_eval_api")
    assert RUN_ID.match(rid), rid
    return rid


def _md(page, elem_id: str) -> str:
    """The rendered text of a Markdown component (without the loading overlay)."""
    return page.locator(f"#{elem_id} [data-testid='markdown']").inner_text().strip()


def _open_reports(page, app, run_id: str):
    page.goto(app.url + "/?__theme=light")
    page.get_by_role("tab", name="报告").click()
    page.wait_for_selector("#rep-runs")
    page.wait_for_function(f"() => document.querySelector('#rep-runs').innerText.includes('{run_id}')",
                           timeout=60_000)
    page.wait_for_function(
        f"() => document.querySelector(\"#rep-metrics [data-testid='markdown']\")?.innerText.includes('{run_id}')")


def _open_view(page, name: str) -> None:
    """Open one of the charts' sub-tabs (准确率, ROC · PR, 延迟与成本, 提示词版本)."""
    page.locator(f"#rep-view-pick label:has-text('{name}')").click()


def _chart_text(page, elem_id: str) -> str:
    """The text a Plotly chart draws (its SVG labels), '' when nothing is drawn."""
    return page.evaluate(f"() => [...document.querySelectorAll('#{elem_id} .js-plotly-plot text')]"
                         ".map(t => t.textContent).join(' ')")


@pytest.mark.browser
@pytest.mark.slow
def test_metrics_api_names_label_set_n_and_intervals(app, run_id):
    from gradio_client import Client

    m = Client(app.url, verbose=False).predict(run_id=run_id, policy="counted_wrong", api_name="/run_metrics")
    assert m["run_id"] == run_id and m["label_set"] == "demo" and m["n"] == m["label_set_size"] > 0
    assert m["accuracy_ci"] and 0 <= m["accuracy_ci"][0] <= m["accuracy"] <= m["accuracy_ci"][1] <= 1
    assert set(m["metrics_both_ways"]) == {"counted_wrong", "excluded"}


@pytest.mark.browser
@pytest.mark.slow
def test_reports_tab_shows_run_metrics_and_charts(page, app, run_id):
    _open_reports(page, app, run_id)
    metrics = _md(page, "rep-metrics")
    assert "demo" in metrics and "n=" in metrics and "95%" in metrics
    assert "未解析/出错计为错误" in metrics and "未解析/出错不计入" in metrics
    assert re.search(r"\d+% \[\d+–\d+%\]", metrics), metrics
    cost_line = next(ln for ln in metrics.splitlines() if ln.strip().startswith("成本"))
    assert "$" in cost_line or "未知" in cost_line  # measured, or said to be unknown; never a silent 0
    decision = _md(page, "rep-decision")
    assert "决策规则" in decision and "结论" in decision and "95%" in decision
    table = page.locator("#rep-runs").inner_text()
    assert "baseline" in table and "demo" in table
    # the charts' sub-tabs: the open one is drawn, each other one when it is opened
    page.wait_for_selector("#rep-chart-confusion .gp-cm-pair")
    assert page.locator("#rep-chart-confusion .gp-cm-pair table").count() == 2  # both unparsed policies
    _open_view(page, "延迟与成本")
    page.wait_for_selector("#rep-chart-latency .js-plotly-plot")
    page.wait_for_selector("#rep-chart-cost .js-plotly-plot")
    assert page.locator("#rep-chart-latency .js-plotly-plot").count() == 1
    assert page.locator("#rep-chart-cost .js-plotly-plot").count() == 1
    _open_view(page, "提示词版本")
    page.wait_for_function("() => !document.querySelector('#rep-chart-versions')?.offsetParent", timeout=30_000)
    # the baseline is a detector: it takes no prompt, so it has no place in the chart of prompt versions
    assert page.locator("#rep-chart-versions .js-plotly-plot .bars path, #rep-chart-versions .js-plotly-plot .point").count() == 0

    # filtering to a status no run has empties the table; back to all shows the run again
    page.locator("#rep-f-search input, #rep-f-search textarea").first.fill("no-such-run")
    page.locator("#rep-f-search input, #rep-f-search textarea").first.press("Enter")
    page.wait_for_function(f"() => !document.querySelector('#rep-runs').innerText.includes('{run_id}')")
    page.locator("#rep-f-search input, #rep-f-search textarea").first.fill("")
    page.locator("#rep-f-search input, #rep-f-search textarea").first.press("Enter")
    page.wait_for_function(f"() => document.querySelector('#rep-runs').innerText.includes('{run_id}')")


@pytest.mark.browser
@pytest.mark.slow
def test_html_export_downloads_self_contained(page, app, run_id):
    _open_reports(page, app, run_id)
    page.click("#rep-export")
    page.wait_for_function(
        "() => document.querySelector(\"#rep-export-status [data-testid='markdown']\")?.innerText.includes('已生成')",
        timeout=120_000)
    with page.expect_download() as dl:
        page.click("#rep-dl-html")
    download = dl.value
    assert download.suggested_filename.endswith(".html")
    text = open(download.path(), encoding="utf-8").read()
    assert run_id in text and "demo" in text
    assert "Plotly" in text and len(text) > 1_000_000  # plotly.js inlined: the file opens offline
    assert not re.search(r"<script[^>]+src=", text) and not re.search(r"<link[^>]+href=\"?https?:", text)
    exports = app.data / "cache" / "exports"
    assert any(p.name.endswith(".parquet") for p in exports.rglob("*"))
    assert any(p.name == "predictions.csv" for p in exports.rglob("*"))


def test_price_table_edits_go_through_set_price(store):
    import pandas as pd

    from reports import costs as C
    from reports.runs import RunError
    from webapp.tabs.reports import PRICE_COLUMNS, price_rows, save_prices

    class _State:  # the tab's functions only need the store
        pass

    st = _State()
    st.store = store
    rows = price_rows(st)
    assert rows and len(rows[0]) == len(PRICE_COLUMNS)
    df = pd.DataFrame(rows, columns=PRICE_COLUMNS)
    assert save_prices(st, df) == []  # nothing changed, nothing written
    df.loc[0, "usd_per_hour"] = 1.25
    new = pd.DataFrame([["test", "gpu-box", "", 1, "L4", "0.5", None, None, None, None, None]], columns=PRICE_COLUMNS)
    changed = save_prices(st, pd.concat([df, new], ignore_index=True))
    assert len(changed) == 2
    prices = {(r["provider"], r["sku"], r["region"]): r for r in C.list_prices(store)}
    first = prices[(rows[0][0], rows[0][1], rows[0][2] or "")]
    assert first["usd_per_hour"] == 1.25 and first["edited"]
    assert prices[("test", "gpu-box", "")]["usd_per_hour"] == 0.5
    bad = pd.DataFrame(rows, columns=PRICE_COLUMNS).astype(object)
    bad.loc[1, "usd_per_hour"] = "cheap"
    with pytest.raises(RunError, match=r"^Row 2 .*usd_per_hour must be a number"):
        save_prices(st, bad)


def test_tab_views_stay_out_of_the_browser_run_history(env_dirs):
    """Gradio records every public event's outputs in the browser's localStorage run history (re-reading and
    re-writing all of it on each call); the tab's views (table + seven charts per click) are not public API."""
    import gradio as gr

    from reports.store import Store
    from webapp.config import load_config
    from webapp.library import Library
    from webapp.state import AppState
    from webapp.tabs import reports as tab

    cfg = load_config()
    store = Store(cfg.db_path)
    try:
        state = AppState(config=cfg, store=store, library=Library(cfg, store))
        with gr.Blocks() as demo:
            with gr.Tabs():
                with gr.Tab("报告", id="reports"):
                    tab.build(state, {})
        plots = {b._id for b in demo.blocks.values() if isinstance(b, gr.Plot)}
        views = [f for f in demo.fns.values() if plots & {o._id for o in f.outputs}]
        names = {f.fn.__name__ for f in views}
        assert {"on_refresh", "on_filter", "on_select_row", "on_run", "on_page_load"} <= names, names
        assert all(f.api_visibility != "public" for f in views), [(f.fn.__name__, f.api_visibility) for f in views]
        # the tab's API stays public
        apis = {f.api_name: f.api_visibility for f in demo.fns.values()}
        assert apis.get("run_metrics") == "public" and apis.get("report_json") == "public"
    finally:
        store.close()


@pytest.mark.browser
@pytest.mark.slow
def test_refresh_leaves_no_run_history_in_the_browser(page, app, run_id):
    """Nothing of the tab (nor of any other: the app turns Gradio's run history off) is kept in localStorage,
    where Gradio would otherwise copy every public call's outputs and re-write them on each click. That the check
    looks where Gradio keeps that history is shown by tests/test_browser_chat.py, which fails with it on."""
    _open_reports(page, app, run_id)
    page.click("#rep-refresh")
    page.wait_for_timeout(1500)
    keys = page.evaluate("() => Object.keys(localStorage)")
    assert not [k for k in keys if k.startswith("gradio:run-history:")], keys


def _tab_handlers(env_dirs):
    import gradio as gr

    from reports.store import Store
    from webapp.config import load_config
    from webapp.library import Library
    from webapp.state import AppState
    from webapp.tabs import reports as tab

    cfg = load_config()
    store = Store(cfg.db_path)
    state = AppState(config=cfg, store=store, library=Library(cfg, store))
    with gr.Blocks() as demo:
        with gr.Tabs():
            with gr.Tab("报告", id="reports"):
                tab.build(state, {})
    fns = {getattr(f.fn, "__name__", None): f.fn for f in demo.fns.values()}
    return store, fns


def _kinds(out) -> list[str]:
    """skip / update / value for each output of a handler."""
    return ["skip" if isinstance(o, dict) and o.get("__type__") == "update" and len(o) == 1 else
            "update" if isinstance(o, dict) and o.get("__type__") == "update" else "value" for o in out]


def test_a_view_the_page_already_shows_is_not_sent_again(env_dirs):
    """The tab remembers per session what the page shows (fingerprints): a refresh that changes nothing sends no
    chart, table or list again; a change, another language or another filter does, and a chart of a closed sub-tab
    that went stale is emptied (then drawn from the new data when its sub-tab opens)."""
    from engines.types import Verdict
    from reports.runs import add_prediction, create_run
    from tests.test_export import _populate
    from webapp.tabs import reports as tab

    store, fns = _tab_handlers(env_dirs)
    try:
        a, _, _ = _populate(store)
        refresh, fns_view = fns["on_refresh"], fns
        args = [tab.ALL] * 5 + ["", False, a]  # the run with confidences, picked
        n_filters, charts = 5, len(tab.CHART_KEYS)
        # outputs: 5 filters, count line, table, page, prev, next, run, export, metrics, decision, charts, ...
        table_at, chart_at = n_filters + 1, n_filters + 9

        def chart_kinds(out, at=chart_at):
            return dict(zip(tab.CHART_KEYS, _kinds(out[at:at + charts])))

        def view(name, shown):
            return fns_view["on_view"](name, a, *args[:7], shown)

        first = refresh(*args, "accuracy", {})
        assert _kinds(first)[table_at] == "value" and chart_kinds(first)["confusion"] == "update"
        assert all(chart_kinds(first)[k] == "skip" for k in ("roc", "pr", "latency", "cost", "versions"))  # closed
        again = refresh(*args, "accuracy", first[-1])
        assert _kinds(again)[:n_filters] == ["skip"] * n_filters and _kinds(again)[table_at] == "skip"
        assert set(chart_kinds(again).values()) == {"skip"}
        # a sub-tab opened: its charts drawn from the run shown; opened again with nothing new: nothing sent
        opened = view("curves", again[-1])
        assert chart_kinds(opened, 5)["roc"] == chart_kinds(opened, 5)["pr"] == "update"
        assert set(chart_kinds(view("curves", opened[-1]), 5).values()) == {"skip"}
        lat = view("latency_cost", opened[-1])
        assert chart_kinds(lat, 5)["latency"] == "update"
        back = view("accuracy", lat[-1])
        assert set(chart_kinds(back, 5).values()) == {"skip"}  # the confusion chart is still what it shows
        # a new run: the table is sent; the closed latency chart (now stale) is emptied; the picked run's
        # charts did not change and are not sent
        rid = create_run(store, engine="baseline", label_set="dev12")
        add_prediction(store, rid, "v00.avi", None, Verdict(ghost_probing=True, confidence=0.9, status="ok"),
                       {"latency_s": 9.0})
        changed = refresh(*args, "accuracy", back[-1])
        assert _kinds(changed)[table_at] == "value"
        assert changed[chart_at + tab.CHART_KEYS.index("latency")] == {"__type__": "update", "value": None}
        assert chart_kinds(changed)["confusion"] == chart_kinds(changed)["roc"] == "skip"
        assert chart_kinds(view("latency_cost", changed[-1]), 5)["latency"] == "update"  # drawn anew when opened
        # another language is another page: everything it shows is sent again
        class _En:
            headers = {"accept-language": "en-US,en"}

        en = refresh(*args, "accuracy", changed[-1], request=_En())
        assert _kinds(en)[table_at] == "value" and chart_kinds(en)["confusion"] == "update"
        assert "update" in _kinds(en)[:n_filters]
        # a filter: the table and the charts of what it leaves
        filt = fns["on_filter"]("openai", *args[1:], "accuracy", en[-1], request=_En())
        assert _kinds(filt)[1] == "value" and dict(zip(tab.CHART_KEYS, _kinds(filt[9:9 + charts])))["confusion"] == "update"
    finally:
        store.close()


def test_runs_table_pages(env_dirs):
    """More runs than a page: the table shows PAGE_ROWS of them (newest first), the pager the others."""
    from reports.runs import create_run
    from tests.test_export import _labels
    from webapp.tabs import reports as tab

    store, fns = _tab_handlers(env_dirs)
    try:
        _labels(store, "dev12", 12)
        for i in range(tab.PAGE_ROWS + 3):
            create_run(store, engine="baseline", label_set="dev12", name=f"run-{i:03d}")
        args = [tab.ALL] * 5 + ["", False, ""]
        out = fns["on_refresh"](*args, "accuracy", {})
        count, table, page, prev, nxt = out[5:10]
        assert len(table) == tab.PAGE_ROWS and page == 0
        assert prev == {"__type__": "update", "visible": True, "interactive": False} and nxt["interactive"] is True
        assert f"{tab.PAGE_ROWS + 3} 次运行" in count and f"第 1–{tab.PAGE_ROWS} 次" in count
        rest = fns["on_page_next"](*args[:7], page, out[-1])
        assert len(rest[1]) == 3 and rest[2] == 1 and rest[4]["interactive"] is False
        assert not set(rest[1].iloc[:, 0]) & set(table.iloc[:, 0])  # the other runs
        assert f"第 {tab.PAGE_ROWS + 1}–{tab.PAGE_ROWS + 3} 次" in rest[0]
    finally:
        store.close()


@pytest.mark.browser
@pytest.mark.slow
def test_chart_subtabs_draw_when_opened_and_never_show_a_stale_chart(page, app, run_id):
    """Only the open sub-tab's charts are drawn; another sub-tab's are drawn when it opens, from the runs of that
    moment; a drawn chart in a closed sub-tab that new runs made stale is emptied, never shown again.
    (Runs last in this file: it adds runs to the app the other tests share.)"""
    from gradio_client import Client

    client = Client(app.url, verbose=False)

    def baseline_latency_n() -> int:  # every baseline answer with a latency, over all runs
        ids = [r["run_id"] for r in client.predict(api_name="/report_json")["runs"]]
        return sum(client.predict(run_id=r, policy="counted_wrong", api_name="/run_metrics")["latency_s"]["n"]
                   for r in ids)

    _open_reports(page, app, run_id)
    page.wait_for_selector("#rep-chart-confusion .gp-cm-pair")
    m = client.predict(run_id=run_id, policy="counted_wrong", api_name="/run_metrics")
    assert f"TP {m['tp']}" in page.inner_text("#rep-chart-confusion .gp-cm-pair")
    # not drawn before their sub-tabs are opened
    for elem in ("rep-chart-latency", "rep-chart-cost", "rep-chart-roc", "rep-chart-pr", "rep-chart-versions"):
        assert page.locator(f"#{elem} .js-plotly-plot").count() == 0, elem

    second = client.predict(label_set="demo", engine="baseline", prompt="", video_ids=[], api_name="/run_eval_api")
    page.click("#rep-refresh")
    page.wait_for_function(
        f"() => document.querySelector(\"#rep-metrics [data-testid='markdown']\")?.innerText.includes('{second}')")
    n2 = baseline_latency_n()
    _open_view(page, "延迟与成本")
    page.wait_for_function(f"() => document.querySelector('#rep-chart-latency')?.textContent.includes('(n={n2})')")
    assert second[-4:] in _chart_text(page, "rep-chart-cost") and run_id[-4:] in _chart_text(page, "rep-chart-cost")

    _open_view(page, "准确率")
    third = client.predict(label_set="demo", engine="baseline", prompt="", video_ids=[], api_name="/run_eval_api")
    page.click("#rep-refresh")
    page.wait_for_function(
        f"() => document.querySelector(\"#rep-metrics [data-testid='markdown']\")?.innerText.includes('{third}')")
    _open_view(page, "延迟与成本")
    assert f"(n={n2})" not in _chart_text(page, "rep-chart-latency")  # the stale chart was emptied
    n3 = baseline_latency_n()
    assert n3 > n2
    page.wait_for_function(f"() => document.querySelector('#rep-chart-latency')?.textContent.includes('(n={n3})')")
    assert f"(n={n2})" not in _chart_text(page, "rep-chart-latency")
