"""任务 · Jobs tab: every cloud job and endpoint with its state badge, history of state changes with times,
compute × instance count, duration and cost so far, a link to its logs, cancel, and auto refresh.

State lives in ``reports.jobs``; asking the clouds is ``engines.cloud.service`` (refresh, cancel, collect
and ingest). A completed job's outputs are ingested as a run linked to the job (``runs.job_id``) and
the run opens in 报告 (Reports). Auto refresh is a ``gr.Timer`` whose interval is configurable and that
is switched off while nothing is queued or running. Missing credentials or workspace: one sentence.
"""

from __future__ import annotations

import html
import logging
from typing import Any

import gradio as gr

from reports import jobs as J
from webapp.i18n import add_translations, t
from webapp.state import AppState, is_user_error, status_md, user_message

log = logging.getLogger(__name__)

add_translations({
    "任务": "Jobs",
    "云端连接": "Cloud connections",
    "刷新任务状态": "Refresh job states",
    "自动刷新": "Auto refresh",
    "刷新间隔（秒）": "Refresh interval (s)",
    "同步 SageMaker 端点与批量转换任务": "Sync SageMaker endpoints and transform jobs",
    "任务与端点": "Jobs and endpoints",
    "选中的任务": "Selected job",
    "取消任务": "Cancel job",
    "导入输出为运行": "Ingest outputs as a run",
    "在报告中查看运行": "Show the run in Reports",
    "状态变化": "State changes",
})

BADGE_COLORS = {"queued": "#8a6d00", "running": "#1d5fbf", "completed": "#1f7a3a", "failed": "#b3261e",
                "canceled": "#5f6368", "deleted": "#5f6368"}
KIND_NAMES = {"job": "任务 job", "endpoint": "端点 endpoint", "transform": "批量转换 transform"}
DEFAULT_INTERVAL_S = 15.0


def badge(state: str) -> str:
    color = BADGE_COLORS.get(state, "#5f6368")
    return (f'<span class="gp-badge gp-state-{html.escape(state)}" style="background:{color};color:#fff;'
            f'border-radius:10px;padding:1px 8px;font-size:12px">{J.STATE_NAMES.get(state, state)} {html.escape(state)}</span>')


def _usd(v: float | None) -> str:
    return "未知 unknown" if v is None else f"${v:,.2f}"


def availability_md() -> str:
    from engines.cloud.service import cloud_status

    lines = []
    for s in cloud_status():
        name = "Azure ML" if s["backend"] == "azureml" else "SageMaker"
        lines.append(f"- **{name}**: " + ("✅ " if s["available"] else "⚠️ ") + html.escape(s["reason"]))
    return "\n".join(lines)


def jobs_table_html(store: Any) -> str:
    rows = J.list_jobs(store)
    if not rows:
        return ('<p id="jobs-empty">还没有云端任务：用 <code>ghostprobe jobs submit-eval --backend azureml …</code> 提交评测，'
                '或同步 SageMaker 端点。 (No cloud jobs yet.)</p>')
    head = ("<tr><th>任务 job</th><th>类型 kind</th><th>状态 state</th><th>计算 compute × 数量</th>"
            "<th>时长 duration</th><th>成本 cost so far</th><th>运行 run</th><th>日志 logs</th></tr>")
    body = []
    for j in rows:
        dur = J.fmt_duration(J.duration_s(j))
        usd, _ = J.job_cost(store, j)
        compute = f"{html.escape(str(j.get('compute') or '-'))} · {html.escape(str(j.get('instance_type') or '?'))} × {int(j.get('instance_count') or 1)}"
        run = f'<code class="gp-job-run">{html.escape(j["run_id"])}</code>' if j.get("run_id") else "—"
        logs = (f'<a href="{html.escape(j["url"])}" target="_blank" rel="noopener">打开 open</a>'
                if j.get("url") else "—")
        body.append(f'<tr data-job="{html.escape(j["job_id"])}"><td><code>{html.escape(j["job_id"])}</code></td>'
                    f'<td>{KIND_NAMES.get(j["kind"], j["kind"])}</td><td>{badge(j["state"])}'
                    + (f' <small>{html.escape(j["provider_state"])}</small>' if j.get("provider_state") else "")
                    + f'</td><td>{compute}</td><td>{dur}</td><td>{_usd(usd)}</td><td>{run}</td><td>{logs}</td></tr>')
    return f'<table id="jobs-table" class="gp-jobs">{head}{"".join(body)}</table>'


def job_detail_md(store: Any, job_id: str | None) -> str:
    if not job_id:
        return ""
    j = J.get_job(store, job_id)
    usd, note = J.job_cost(store, j)
    lines = [f"### `{j['job_id']}` {badge(j['state'])}",
             f"- 计算 compute: **{j.get('compute') or '-'}**, {j.get('instance_count') or 1} × {j.get('instance_type') or '?'}"
             f" (price key `{j.get('location') or '—'}`)",
             f"- 时长 duration: {J.fmt_duration(J.duration_s(j))}; 成本 cost so far: **{_usd(usd)}** — {note}"]
    if j.get("url"):
        lines.append(f"- 日志 logs: [{j['url'][:80]}]({j['url']})")
    if j.get("run_id"):
        lines.append(f"- 已导入为运行 ingested as run **`{j['run_id']}`** — 在“报告”中查看 (see Reports)")
    if j.get("message"):
        lines.append(f"- 消息 message: {html.escape(str(j['message']))}")
    lines += ["", "| 时间 time (UTC) | 状态 state | 说明 message |", "|---|---|---|"]
    for e in J.events(store, j["job_id"]):
        lines.append(f"| {e['at']:%Y-%m-%d %H:%M:%S} | {badge(e['state'])} | {html.escape(str(e.get('message') or ''))} |")
    return "\n".join(lines)


def _choices(store: Any) -> list[tuple[str, str]]:
    return [(f"{j['job_id']} · {j['state']}", j["job_id"]) for j in J.list_jobs(store)]


def build(state: AppState, shared: dict[str, dict] | None = None) -> dict[str, Any]:
    store = state.store
    cloud = gr.Markdown(availability_md(), elem_id="jobs-cloud")
    with gr.Row():
        refresh_btn = gr.Button(t("刷新任务状态"), scale=0, elem_id="jobs-refresh")
        sync_btn = gr.Button(t("同步 SageMaker 端点与批量转换任务"), scale=0, elem_id="jobs-sync")
        auto = gr.Checkbox(label=t("自动刷新"), value=True, elem_id="jobs-auto")
        interval = gr.Number(label=t("刷新间隔（秒）"), value=DEFAULT_INTERVAL_S, minimum=2, maximum=3600,
                             elem_id="jobs-interval")
    status = gr.Markdown(elem_id="jobs-status")
    table = gr.HTML(jobs_table_html(store), elem_id="jobs-table-wrap")
    choices = _choices(store)
    pick = gr.Dropdown(choices=choices, value=choices[0][1] if choices else None, label=t("选中的任务"),
                       elem_id="jobs-pick")
    detail = gr.Markdown(job_detail_md(store, choices[0][1] if choices else None), elem_id="jobs-detail")
    with gr.Row():
        cancel_btn = gr.Button(t("取消任务"), variant="stop", scale=0, elem_id="jobs-cancel")
        ingest_btn = gr.Button(t("导入输出为运行"), scale=0, elem_id="jobs-ingest")
        show_run_btn = gr.Button(t("在报告中查看运行"), scale=0, elem_id="jobs-show-run")
    timer = gr.Timer(value=DEFAULT_INTERVAL_S, active=J.any_active(store))

    def _view(job_id: str | None, msg: str = ""):
        ch = _choices(store)
        ids = [c[1] for c in ch]
        jid = job_id if job_id in ids else (ids[0] if ids else None)
        return (jobs_table_html(store), gr.update(choices=ch, value=jid), job_detail_md(store, jid), msg)

    def _timer(on: bool, secs: float | None):
        secs = float(secs or DEFAULT_INTERVAL_S)
        return gr.Timer(value=max(2.0, secs), active=bool(on) and J.any_active(store))

    def do_refresh(job_id, on, secs):
        from engines.cloud import service as S

        try:
            results = S.refresh_active(store)
        except Exception as e:  # noqa: BLE001 - one sentence for a person, the log for a bug
            if not is_user_error(e):
                log.error("jobs refresh failed", exc_info=e)
            return (*_view(job_id, status_md(user_message(e), ok=False)), _timer(on, secs))
        problems = [f"{r['job_id']}: {r.get('error') or r.get('ingest_error')}" for r in results
                    if r.get("error") or r.get("ingest_error")]
        changed = [f"{r['job_id']} → {r['state']}" for r in results if r.get("entered")]
        msg = status_md("; ".join(problems), ok=False) if problems else status_md(
            (", ".join(changed) if changed else f"{len(results)} 个进行中的任务已刷新 (refreshed), 无变化 (no change)")
            if results else "没有进行中的任务 (nothing is running).")
        return (*_view(job_id, msg), _timer(on, secs))

    def do_sync(job_id, on, secs):
        from engines.cloud.sagemaker import SageMakerBackend

        try:
            seen = SageMakerBackend().sync(store)
            msg = status_md(f"SageMaker: {len(seen)} 个端点/批量转换任务 (endpoints / transform jobs).")
        except Exception as e:  # noqa: BLE001
            if not is_user_error(e):
                log.error("SageMaker sync failed", exc_info=e)
            msg = status_md(user_message(e), ok=False)
        return (*_view(job_id, msg), _timer(on, secs))

    def do_cancel(job_id, on, secs):
        from engines.cloud import service as S

        if not job_id:
            return (*_view(None, status_md("先选择一个任务 (pick a job first).", ok=False)), _timer(on, secs))
        try:
            out = S.cancel(store, job_id)
            msg = status_md(f"{out['job_id']} → {out['state']}")
        except Exception as e:  # noqa: BLE001
            if not is_user_error(e):
                log.error("cancel failed", exc_info=e)
            msg = status_md(user_message(e), ok=False)
        return (*_view(job_id, msg), _timer(on, secs))

    def do_ingest(job_id):
        from engines.cloud import service as S

        if not job_id:
            return _view(None, status_md("先选择一个任务 (pick a job first).", ok=False))
        try:
            job = J.get_job(store, job_id)
            if job["state"] != "completed":
                raise J.JobError(f"Job {job_id} is {job['state']}; only a completed job's outputs can be ingested.")
            rid = S.collect_and_ingest(store, job_id)
            msg = status_md(f"{job_id} → run {rid}")
        except Exception as e:  # noqa: BLE001
            if not is_user_error(e):
                log.error("ingest failed", exc_info=e)
            msg = status_md(user_message(e), ok=False)
        return _view(job_id, msg)

    outs = [table, pick, detail, status]
    refresh_btn.click(do_refresh, [pick, auto, interval], [*outs, timer])
    timer.tick(do_refresh, [pick, auto, interval], [*outs, timer])
    sync_btn.click(do_sync, [pick, auto, interval], [*outs, timer])
    cancel_btn.click(do_cancel, [pick, auto, interval], [*outs, timer])
    ingest_btn.click(do_ingest, [pick], outs)
    pick.change(lambda jid: job_detail_md(store, jid), [pick], [detail])
    auto.change(_timer, [auto, interval], [timer])
    interval.change(_timer, [auto, interval], [timer])

    lab = (shared or {}).get("prompt_lab") or {}
    if lab.get("cloud_job") is not None:  # a job submitted from the Prompt Lab shows here at once, auto refresh on
        def on_submitted(job_id, on, secs):
            return (*_view(job_id or None), _timer(on, secs))

        lab["cloud_job"].change(on_submitted, [lab["cloud_job"], auto, interval], [*outs, timer])

    rep = (shared or {}).get("reports") or {}
    if rep.get("run") is not None:
        def show_run(job_id):
            job = J.get_job(store, job_id) if job_id else None
            rid = (job or {}).get("run_id")
            if not rid:
                return gr.update(), status_md("这个任务还没有导入的运行 (this job has no ingested run yet).", ok=False)
            from webapp.tabs import reports as RT

            try:
                ch = RT.run_choices(RT.filtered(state))
                return gr.update(choices=ch, value=rid), status_md(f"运行 {rid} 已在“报告”中选中 (selected in Reports).")
            except Exception:  # noqa: BLE001 - the Reports tab's helpers changed: still select the run
                return gr.update(value=rid), status_md(f"运行 {rid} 已在“报告”中选中 (selected in Reports).")

        show_run_btn.click(show_run, [pick], [rep["run"], status])
    return {"table": table, "pick": pick, "timer": timer, "cloud": cloud}
