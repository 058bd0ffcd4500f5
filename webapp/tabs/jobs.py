"""任务 · Jobs tab: every cloud job and endpoint with its state badge, history of state changes with times,
compute × instance count, duration and cost so far, a link to its logs, cancel, and auto refresh.

State lives in ``reports.jobs``; asking the clouds is ``engines.cloud.service`` (refresh, cancel, collect
and ingest). A completed job's outputs are ingested as a run linked to the job (``runs.job_id``) and
the run opens in 报告 (Reports). Auto refresh is a ``gr.Timer`` whose interval is configurable and that
is switched off while nothing is queued or running. Missing credentials or workspace: one sentence.

Run-time text (table, badges, detail, status lines, the clouds' lines) comes from the message catalogue in
the browser's language (``webapp.messages.lang_of``); the page load renders the table, the detail and the
clouds' lines (build time knows no browser).
"""

from __future__ import annotations

import html
import logging
from typing import Any

import gradio as gr

from reports import jobs as J
from webapp import messages as MSG
from webapp.i18n import add_translations, t
from webapp.state import AppState, is_user_error, status_md

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
DEFAULT_INTERVAL_S = 15.0

# run-time text, in the browser's language (webapp.messages.lang_of); zh without a request
MSG.add_messages({
    # the jobs table
    "jobs_empty": {"zh": "还没有云端任务：用 <code>ghostprobe jobs submit-eval --backend azureml …</code> 提交评测，"
                         "或同步 SageMaker 端点。",
                   "en": "No cloud jobs yet: submit an evaluation with <code>ghostprobe jobs submit-eval --backend "
                         "azureml …</code>, or sync the SageMaker endpoints."},
    "jobs_h_job": {"zh": "任务", "en": "Job"},
    "jobs_h_kind": {"zh": "类型", "en": "Kind"},
    "jobs_h_state": {"zh": "状态", "en": "State"},
    "jobs_h_compute": {"zh": "计算资源 × 数量", "en": "Compute × count"},
    "jobs_h_duration": {"zh": "时长", "en": "Duration"},
    "jobs_h_cost": {"zh": "成本（至今）", "en": "Cost so far"},
    "jobs_h_run": {"zh": "运行", "en": "Run"},
    "jobs_h_logs": {"zh": "日志", "en": "Logs"},
    "jobs_open_logs": {"zh": "打开", "en": "open"},
    "jobs_kind_job": {"zh": "任务", "en": "job"},
    "jobs_kind_endpoint": {"zh": "端点", "en": "endpoint"},
    "jobs_kind_transform": {"zh": "批量转换", "en": "transform"},
    # the selected job
    "jobs_d_compute": {"zh": "- 计算资源：**{compute}**，{count} × {sku}（价格键 {loc}）",
                       "en": "- compute: **{compute}**, {count} × {sku} (price key {loc})"},
    "jobs_d_time": {"zh": "- 时长：{dur}；成本（至今）：**{cost}** — {note}",
                    "en": "- duration: {dur}; cost so far: **{cost}** — {note}"},
    "jobs_d_logs": {"zh": "- 日志：{link}", "en": "- logs: {link}"},
    "jobs_d_run": {"zh": "- 已导入为运行 **{rid}** — 在“报告”中查看", "en": "- ingested as run **{rid}** — see Reports"},
    "jobs_d_message": {"zh": "- 消息：{msg}", "en": "- message: {msg}"},
    "jobs_d_history": {"zh": "| 时间（UTC） | 状态 | 说明 |", "en": "| time (UTC) | state | message |"},
    # status lines
    "jobs_pick_first": {"zh": "先选择一个任务。", "en": "Pick a job first."},
    "jobs_nothing_running": {"zh": "没有进行中的任务。", "en": "Nothing is running."},
    "jobs_no_change": {"zh": "{n} 个进行中的任务已刷新，无变化。", "en": "{n} active job(s) refreshed, no change."},
    "jobs_synced": {"zh": "SageMaker：{n} 个端点/批量转换任务。", "en": "SageMaker: {n} endpoint(s) / transform job(s)."},
    "jobs_ingested": {"zh": "{job} → 运行 {rid}", "en": "{job} → run {rid}"},
    "jobs_no_run": {"zh": "这个任务还没有导入的运行。", "en": "This job has no ingested run yet."},
    "jobs_run_selected": {"zh": "运行 {rid} 已在“报告”中选中。", "en": "Run {rid} is selected in Reports."},
})
# the Azure ML line of cloud_status() in full (Prompt Lab's own line keeps "cluster …" as written): added after
# Prompt Lab's translations (imported first, whatever imports this module), so these are tried before them
import webapp.tabs.prompt_lab  # noqa: E402,F401

MSG.add_error_translations([
    (r"configured, not yet contacted: workspace (?P<ws>\S+), cluster (?P<c>\S+?)\.?", "已配置，尚未连接：工作区 {ws}，计算集群 {c}。"),
    (r"configured, not yet contacted: workspace (?P<ws>\S+), serverless (?P<sku>\S+?)\.?",
     "已配置，尚未连接：工作区 {ws}，无服务器实例 {sku}。"),
])
KIND_NAMES = {k: {lang: MSG.m(f"jobs_kind_{k}", lang) for lang in MSG.LANGS} for k in ("job", "endpoint", "transform")}


def state_name(state: str, lang: str | None = "zh") -> str:
    """A job state as a person reads it: 已完成 for a Chinese browser, completed for an English one."""
    return J.STATE_NAMES.get(state, state) if MSG.norm(lang) == "zh" else state


def kind_name(kind: str, lang: str | None = "zh") -> str:
    return KIND_NAMES.get(kind, {}).get(MSG.norm(lang), kind)


def badge(state: str, lang: str | None = "zh") -> str:
    color = BADGE_COLORS.get(state, "#5f6368")
    return (f'<span class="gp-badge gp-state-{html.escape(state)}" style="background:{color};color:#fff;'
            f'border-radius:10px;padding:1px 8px;font-size:12px">{html.escape(state_name(state, lang))}</span>')


def _usd(v: float | None, lang: str | None = "zh") -> str:
    return MSG.m("unknown", lang) if v is None else f"${v:,.2f}"


def _code(v: Any) -> str:
    """A technical value as a Markdown code span (shown literally; a backtick cannot end it early)."""
    return "`" + str(v).replace("`", "'") + "`"


def _md_text(v: Any, lang: str | None) -> str:
    """A backend sentence (English as written) in ``lang``, literal inside gr.Markdown."""
    return MSG.escape_md(MSG.translate(str(v), lang))


def availability_md(lang: str | None = "zh") -> str:
    from engines.cloud.service import cloud_status

    lines = []
    for s in cloud_status():
        name = "Azure ML" if s["backend"] == "azureml" else "SageMaker"
        lines.append(f"- **{name}**: " + ("✅ " if s["available"] else "⚠️ ") + _md_text(s["reason"], lang))
    return "\n".join(lines)


def jobs_table_html(store: Any, lang: str | None = "zh") -> str:
    rows = J.list_jobs(store)
    if not rows:
        return f'<p id="jobs-empty">{MSG.m("jobs_empty", lang)}</p>'
    head = "<tr>" + "".join(f"<th>{html.escape(MSG.m('jobs_h_' + k, lang))}</th>" for k in
                            ("job", "kind", "state", "compute", "duration", "cost", "run", "logs")) + "</tr>"
    body = []
    for j in rows:
        dur = J.fmt_duration(J.duration_s(j))
        usd, _ = J.job_cost(store, j)
        compute = f"{html.escape(str(j.get('compute') or '-'))} · {html.escape(str(j.get('instance_type') or '?'))} × {int(j.get('instance_count') or 1)}"
        run = f'<code class="gp-job-run">{html.escape(j["run_id"])}</code>' if j.get("run_id") else "—"
        logs = (f'<a href="{html.escape(j["url"])}" target="_blank" rel="noopener">'
                f'{html.escape(MSG.m("jobs_open_logs", lang))}</a>' if j.get("url") else "—")
        body.append(f'<tr data-job="{html.escape(j["job_id"])}"><td><code>{html.escape(j["job_id"])}</code></td>'
                    f'<td>{html.escape(kind_name(j["kind"], lang))}</td><td>{badge(j["state"], lang)}'
                    + (f' <small>{html.escape(j["provider_state"])}</small>' if j.get("provider_state") else "")
                    + f'</td><td>{compute}</td><td>{dur}</td><td>{html.escape(_usd(usd, lang))}</td><td>{run}</td>'
                    f'<td>{logs}</td></tr>')
    return f'<table id="jobs-table" class="gp-jobs">{head}{"".join(body)}</table>'


def job_detail_md(store: Any, job_id: str | None, lang: str | None = "zh") -> str:
    if not job_id:
        return ""
    j = J.get_job(store, job_id)
    usd, note = J.job_cost(store, j)
    lines = [f"### {_code(j['job_id'])} {badge(j['state'], lang)}",
             MSG.m("jobs_d_compute", lang, compute=MSG.escape_md(j.get("compute") or "-"),
                   count=int(j.get("instance_count") or 1), sku=MSG.escape_md(j.get("instance_type") or "?"),
                   loc=_code(j.get("location") or "—")),
             MSG.m("jobs_d_time", lang, dur=J.fmt_duration(J.duration_s(j)), cost=MSG.escape_md(_usd(usd, lang)),
                   note=_md_text(note, lang))]
    if j.get("url"):
        url = str(j["url"])
        link = f"[{MSG.escape_md(url[:80])}]({url.replace(' ', '%20').replace(')', '%29')})"
        lines.append(MSG.m("jobs_d_logs", lang, link=link))
    if j.get("run_id"):
        lines.append(MSG.m("jobs_d_run", lang, rid=_code(j["run_id"])))
    if j.get("message"):
        lines.append(MSG.m("jobs_d_message", lang, msg=_md_text(j["message"], lang)))
    lines += ["", MSG.m("jobs_d_history", lang), "|---|---|---|"]
    for e in J.events(store, j["job_id"]):
        msg = _md_text(e["message"], lang) if e.get("message") else ""
        lines.append(f"| {e['at']:%Y-%m-%d %H:%M:%S} | {badge(e['state'], lang)} | {msg} |")
    return "\n".join(lines)


def error_md(e: BaseException, what: str, lang: str | None = "zh") -> str:
    """⚠️ + an error in the page's language (a bug is logged with its traceback, its sentence still shown)."""
    if not is_user_error(e):
        log.error("%s failed", what, exc_info=e)
    return MSG.error_md(e, lang)


def _choices(store: Any) -> list[tuple[str, str]]:
    return [(f"{j['job_id']} · {j['state']}", j["job_id"]) for j in J.list_jobs(store)]


def build(state: AppState, shared: dict[str, dict] | None = None) -> dict[str, Any]:
    store = state.store
    # the clouds' lines, the table and the detail are rendered on the page load, in the page's language (build
    # time knows no browser); until then they are empty, never another language's text
    cloud = gr.Markdown("", elem_id="jobs-cloud")
    with gr.Row():
        refresh_btn = gr.Button(t("刷新任务状态"), scale=0, elem_id="jobs-refresh")
        sync_btn = gr.Button(t("同步 SageMaker 端点与批量转换任务"), scale=0, elem_id="jobs-sync")
        auto = gr.Checkbox(label=t("自动刷新"), value=True, elem_id="jobs-auto")
        interval = gr.Number(label=t("刷新间隔（秒）"), value=DEFAULT_INTERVAL_S, minimum=2, maximum=3600,
                             elem_id="jobs-interval")
    status = gr.Markdown(elem_id="jobs-status")
    table = gr.HTML("", elem_id="jobs-table-wrap")
    choices = _choices(store)
    pick = gr.Dropdown(choices=choices, value=choices[0][1] if choices else None, label=t("选中的任务"),
                       elem_id="jobs-pick")
    detail = gr.Markdown("", elem_id="jobs-detail")
    with gr.Row():
        cancel_btn = gr.Button(t("取消任务"), variant="stop", scale=0, elem_id="jobs-cancel")
        ingest_btn = gr.Button(t("导入输出为运行"), scale=0, elem_id="jobs-ingest")
        show_run_btn = gr.Button(t("在报告中查看运行"), scale=0, elem_id="jobs-show-run")
    timer = gr.Timer(value=DEFAULT_INTERVAL_S, active=J.any_active(store))

    def _view(job_id: str | None, lang: str, msg: str = ""):
        ch = _choices(store)
        ids = [c[1] for c in ch]
        jid = job_id if job_id in ids else (ids[0] if ids else None)
        return (jobs_table_html(store, lang), gr.update(choices=ch, value=jid), job_detail_md(store, jid, lang), msg)

    def _timer(on: bool, secs: float | None):
        secs = float(secs or DEFAULT_INTERVAL_S)
        return gr.Timer(value=max(2.0, secs), active=bool(on) and J.any_active(store))

    def do_refresh(job_id, on, secs, request: gr.Request):
        from engines.cloud import service as S

        lang = MSG.lang_of(request)
        try:
            results = S.refresh_active(store)
        except Exception as e:  # noqa: BLE001 - one sentence for a person, the log for a bug
            return (*_view(job_id, lang, error_md(e, "jobs refresh", lang)), _timer(on, secs))
        problems = [f"{r['job_id']}: {MSG.translate(str(r.get('error') or r.get('ingest_error')), lang)}"
                    for r in results if r.get("error") or r.get("ingest_error")]
        changed = [f"{r['job_id']} → {r['state']}" for r in results if r.get("entered")]
        if problems:
            msg = status_md(MSG.escape_md(("；" if lang == "zh" else "; ").join(problems)), ok=False)
        elif not results:
            msg = status_md(MSG.md("jobs_nothing_running", lang))
        else:
            msg = status_md(MSG.escape_md(", ".join(changed)) if changed
                            else MSG.md("jobs_no_change", lang, n=len(results)))
        return (*_view(job_id, lang, msg), _timer(on, secs))

    def do_sync(job_id, on, secs, request: gr.Request):
        from engines.cloud.sagemaker import SageMakerBackend

        lang = MSG.lang_of(request)
        try:
            seen = SageMakerBackend().sync(store)
            msg = status_md(MSG.md("jobs_synced", lang, n=len(seen)))
        except Exception as e:  # noqa: BLE001
            msg = error_md(e, "SageMaker sync", lang)
        return (*_view(job_id, lang, msg), _timer(on, secs))

    def do_cancel(job_id, on, secs, request: gr.Request):
        from engines.cloud import service as S

        lang = MSG.lang_of(request)
        if not job_id:
            return (*_view(None, lang, status_md(MSG.md("jobs_pick_first", lang), ok=False)), _timer(on, secs))
        try:
            out = S.cancel(store, job_id)
            msg = status_md(MSG.escape_md(f"{out['job_id']} → {out['state']}"))
        except Exception as e:  # noqa: BLE001
            msg = error_md(e, "cancel", lang)
        return (*_view(job_id, lang, msg), _timer(on, secs))

    def do_ingest(job_id, request: gr.Request):
        from engines.cloud import service as S

        lang = MSG.lang_of(request)
        if not job_id:
            return _view(None, lang, status_md(MSG.md("jobs_pick_first", lang), ok=False))
        try:
            job = J.get_job(store, job_id)
            if job["state"] != "completed":
                raise J.JobError(f"Job {job_id} is {job['state']}; only a completed job's outputs can be ingested.")
            rid = S.collect_and_ingest(store, job_id)
            msg = status_md(MSG.md("jobs_ingested", lang, job=job_id, rid=rid))
        except Exception as e:  # noqa: BLE001
            msg = error_md(e, "ingest", lang)
        return _view(job_id, lang, msg)

    def on_pick(job_id, request: gr.Request):
        return job_detail_md(store, job_id, MSG.lang_of(request))

    def on_page_load(job_id, request: gr.Request):
        """The clouds' lines, the table, the choices and the detail, as they are now, in the page's language."""
        lang = MSG.lang_of(request)
        return (availability_md(lang), *_view(job_id, lang)[:3])

    outs = [table, pick, detail, status]
    refresh_btn.click(do_refresh, [pick, auto, interval], [*outs, timer])
    timer.tick(do_refresh, [pick, auto, interval], [*outs, timer])
    sync_btn.click(do_sync, [pick, auto, interval], [*outs, timer])
    cancel_btn.click(do_cancel, [pick, auto, interval], [*outs, timer])
    ingest_btn.click(do_ingest, [pick], outs)
    pick.change(on_pick, [pick], [detail])
    auto.change(_timer, [auto, interval], [timer])
    interval.change(_timer, [auto, interval], [timer])
    from gradio.context import Context

    if Context.root_block is not None:  # the page load of the Blocks being built (as prompt_lab.on_load)
        Context.root_block.load(on_page_load, [pick], [cloud, table, pick, detail], show_progress="hidden")

    lab = (shared or {}).get("prompt_lab") or {}
    if lab.get("cloud_job") is not None:  # a job submitted from the Prompt Lab shows here at once, auto refresh on
        def on_submitted(job_id, on, secs, request: gr.Request):
            return (*_view(job_id or None, MSG.lang_of(request)), _timer(on, secs))

        lab["cloud_job"].change(on_submitted, [lab["cloud_job"], auto, interval], [*outs, timer])

    rep = (shared or {}).get("reports") or {}
    if rep.get("run") is not None:
        def show_run(job_id, request: gr.Request):
            lang = MSG.lang_of(request)
            job = J.get_job(store, job_id) if job_id else None
            rid = (job or {}).get("run_id")
            if not rid:
                return gr.update(), status_md(MSG.md("jobs_no_run", lang), ok=False)
            from webapp.tabs import reports as RT

            done = status_md(MSG.md("jobs_run_selected", lang, rid=rid))
            try:
                ch = RT.run_choices(RT.filtered(state))
                return gr.update(choices=ch, value=rid), done
            except Exception:  # noqa: BLE001 - the Reports tab's helpers changed: still select the run
                return gr.update(value=rid), done

        show_run_btn.click(show_run, [pick], [rep["run"], status])
    return {"table": table, "pick": pick, "timer": timer, "cloud": cloud}
