"""提示词实验室 (Prompt Lab) tab: versions, diff, edit → new version, run on a label set, matrix, drill-down.

The promptfoo / FiftyOne interaction model: a matrix of videos × runs coloured right / wrong /
unparsed / error, a click on a cell opens the video, the raw answer, the parsed verdict and the
label; reviewer marks and label corrections are stored (corrections as a *new* label set, the
original untouched); two runs compare side by side with McNemar's exact test.

Runs: one at a time per server (the Run button is disabled while one is going, in every browser),
progress drawn in the Run box, named at start; resumed and errors retried from here; renamed,
hidden and deleted under 管理运行. Every run shows its coverage (scored/planned).

Empty states: every button that needs a pick (Resume / Retry, rename / hide / unhide / delete, 查看,
保存评审, 保存标签修正, 比较) is off until it has one, with one sentence saying what is missing; the states
follow each pick (``*_sync``) and, through ``sync_all``, every event that changes the runs.

Everything shown comes from ``prompts`` (versions, diffs), ``webapp.evaluation.run_eval`` (runs),
``reports.runs`` (predictions, reviews, coverage), ``reports.matrix`` (the matrix as data),
``reports.metrics`` (figures with intervals, comparisons) and ``reports.labels`` (corrections).
This module only lays them out, in the browser's language (``webapp.messages``).
"""

from __future__ import annotations

import html
import logging
import os
import threading
from pathlib import Path
from typing import Any

import gradio as gr

from reports import labels as lab
from reports import matrix as MX
from reports import metrics as M
from reports import runs as R
from webapp import messages as msg
from webapp.commands import runs_admin as RA
from webapp.i18n import add_translations, t
from webapp.state import AppState, is_user_error

log = logging.getLogger(__name__)

add_translations({
    "提示词版本": "Prompt version",
    "查看与编辑": "View and edit",
    "YAML（只读）": "YAML (read-only)",
    "与父版本的差异": "Diff against its parent",
    "系统提示词 (system)": "System message",
    "用户提示词 (user)": "User message",
    "少样本示例 (few-shot)": "Few-shot examples",
    "版本说明 (notes)": "Notes",
    "这个版本改了什么、为什么": "what this version changes, and why",
    "另存为新版本": "Save as a new version",
    "运行": "Run",
    "引擎": "Engine",
    "视频子集（留空 = 整个标签集）": "Video subset (empty = the whole label set)",
    "运行名称（可选，唯一）": "Run name (optional, unique)",
    "例如 baseline-v3": "e.g. baseline-v3",
    "开始运行": "Run",
    "取消": "Cancel",
    "继续的运行": "Run to continue",
    "继续运行": "Resume",
    "重试出错的视频": "Retry errors",
    "结果矩阵": "Result matrix",
    "显示的运行": "Runs shown",
    "单元格详情": "Cell details",
    "运行 (run)": "Run",
    "查看": "Show",
    "原始回答": "Raw answer",
    "评审标记": "Review mark",
    "评审意见": "Comment",
    "保存评审": "Save review",
    "修正标签（另存为新标签集）": "Correct the label (saved as a new label set)",
    "修正保存在新标签集 `<原标签集>+fix` 中，原标签集保持不变。":
        "Corrections go into a new label set `<set>+fix`; the original set stays as it was.",
    "正确的标签": "Correct label",
    "出现时间 (s)": "Onset (s)",
    "留空 = 未知": "empty = unknown",
    "备注": "Note",
    "保存标签修正": "Save label correction",
    "比较两次运行": "Compare two runs",
    "运行 A": "Run A",
    "运行 B": "Run B",
    "未解析/出错的处理": "Unparsed / errored answers",
    "比较": "Compare",
    "计为错误": "Counted wrong",
    "不计入": "Left out",
    "同意": "Agree",
    "不同意": "Disagree",
    "不确定": "Unsure",
    "标签有误": "Label wrong",
    "加塞（非鬼探头）": "Cut-in (not ghost probing)",
    "管理运行": "Manage runs",
    "要管理的运行": "Run to manage",
    "新名称（留空 = 清除名称）": "New name (empty = no name)",
    "改名": "Rename",
    "隐藏": "Hide",
    "取消隐藏": "Unhide",
    "确认删除（预测和评审一并删除，无法恢复）": "Yes, delete it (its predictions and reviews go too; no undo)",
    "删除运行": "Delete run",
    "云端评测（Azure ML）": "Cloud evaluation (Azure ML)",
    "用上面“运行”中的提示词版本、引擎、标签集和视频子集，在 Azure ML 的 GPU 集群上评测：先预览任务规格，再提交。":
        "Evaluate the prompt version, engine, label set and subset chosen under Run on an Azure ML GPU cluster: "
        "preview the job spec first, then submit it.",
    "后端": "Backend",
    "模型（可选）": "Model (optional)",
    "计算集群": "Compute cluster",
    "实例类型（SKU）": "Instance type (SKU)",
    "节点数": "Instance count",
    "并行节点数（0 = 单个命令任务）": "Parallel nodes (0 = one command job)",
    "视频位置（Azure）": "Videos in Azure",
    "预览任务规格": "Preview job spec",
    "提交到 Azure ML": "Submit to Azure ML",
    "任务规格（预览，未提交）": "Job spec (preview, not submitted)",
})

msg.add_messages({
    "lab_no_diff": {"zh": "（无差异）", "en": "(no difference)"},
    "lab_same_parent": {"zh": "与父版本 {p} 相同。", "en": "Same as its parent {p}."},
    "lab_parent_gone": {"zh": "父版本 {p} 不在提示词库中，无法比较。", "en": "The parent {p} is not in the prompt library, so there is nothing to compare."},
    "lab_root_version": {"zh": "{r} 是初始版本，没有父版本。", "en": "{r} is a first version; it has no parent."},
    "lab_pick_prompt": {"zh": "请选择一个提示词版本。", "en": "Choose a prompt version."},
    "lab_engine_ok": {"zh": "可用", "en": "available"},
    "lab_engine_no": {"zh": "不可用：{why}", "en": "unavailable: {why}"},
    "lab_pick_set": {"zh": "请先选择一个标签集。", "en": "Choose a label set first."},
    "lab_no_labels": {"zh": "标签集 {s} 没有标签。", "en": "Label set {s} has no labels."},
    "lab_no_runs": {"zh": "该标签集还没有选中的运行：在上方运行一个提示词版本，或在“显示的运行”中选择。",
                    "en": "No run of this label set is selected: run a prompt version above, or pick runs under Runs shown."},
    "lab_click_hint": {"zh": "点击单元格查看视频、原始回答、解析结果和标签。", "en": "Click a cell for the video, the raw answer, the parsed verdict and the label."},
    "lab_matrix_caption": {"zh": "标签集 <b>{s}</b>：{v} 个视频 × {r} 次运行", "en": "Label set <b>{s}</b>: {v} videos × {r} runs"},
    "lab_col_video": {"zh": "视频", "en": "video"}, "lab_col_label": {"zh": "标签", "en": "label"},
    "lab_foot": {"zh": "准确率 [95% CI]（未解析计为错误）", "en": "accuracy [95% CI] (unparsed counted wrong)"},
    "lab_foot_cell": {"zh": "{acc}<br>n={n}，未解析 {u}，出错 {e}<br>覆盖率 {cov}", "en": "{acc}<br>n={n}, unparsed {u}, errors {e}<br>coverage {cov}"},
    "lab_foot_other": {"zh": "按标签集 {s} 评分", "en": "scored on label set {s}"},
    "cell_right": {"zh": "✓ 正确", "en": "✓ right"}, "cell_wrong": {"zh": "✗ 错误", "en": "✗ wrong"},
    "cell_unparsed": {"zh": "? 未解析（不计为“否”）", "en": "? unparsed (never counted as no)"},
    "cell_error": {"zh": "! 出错", "en": "! error"}, "cell_unlabelled": {"zh": "无标签", "en": "unlabelled"},
    "cell_missing": {"zh": "— 尚无预测", "en": "— no prediction yet"},
    "cell_txt_error": {"zh": "! 出错", "en": "! error"}, "cell_txt_unparsed": {"zh": "? 未解析", "en": "? unparsed"},
    "cell_yes": {"zh": "鬼探头", "en": "ghost probing"}, "cell_no": {"zh": "否", "en": "no"},
    "lab_preparing": {"zh": "准备中…", "en": "Preparing…"},
    "lab_prog_start": {"zh": "运行 {r}：{n} 个视频", "en": "Run {r}: {n} videos"},
    "lab_prog_video": {"zh": "{v}：{s}", "en": "{v}: {s}"},
    "lab_unit": {"zh": "视频", "en": "videos"},
    "lab_busy": {"zh": "已有一个运行正在进行（{r}）：等它结束，或先取消它。", "en": "A run is already in progress ({r}): wait for it or cancel it first."},
    "lab_need_prompt": {"zh": "请先选择一个提示词版本。", "en": "Choose a prompt version first."},
    "lab_need_engine": {"zh": "请先选择一个引擎。", "en": "Choose an engine first."},
    "lab_need_set": {"zh": "请先选择一个标签集：准确率需要标签。", "en": "Choose a label set first; accuracy needs labels."},
    "lab_need_resume": {"zh": "请先在“继续的运行”中选择一次运行。", "en": "Pick the run to continue first."},
    "lab_nothing_left": {"zh": "运行 {r} 没有要继续的视频：每个视频都有回答{errs}。",
                         "en": "Run {r} has nothing left to run: every video has an answer{errs}."},
    "lab_nothing_left_errs": {"zh": "（{n} 个出错，可用“重试出错的视频”）", "en": " ({n} errored; use Retry errors)"},
    "lab_done": {"zh": "运行完成", "en": "Run finished"}, "lab_cancelled": {"zh": "运行已取消", "en": "Run cancelled"},
    "lab_ended": {"zh": "运行结束（{s}）", "en": "Run ended ({s})"},
    "lab_summary": {"zh": "{head}：{r}（标签集 {s}），{p} 个视频：已解析 {ok}，未解析 {u}，出错 {e}{extra}；覆盖率 {cov}；{txt}；用时 {w:.1f} s。",
                    "en": "{head}: {r} (label set {s}), {p} videos: parsed {ok}, unparsed {u}, errors {e}{extra}; coverage {cov}; {txt}; {w:.1f} s."},
    "lab_not_started": {"zh": "，{n} 个未开始（在“继续的运行”中选它，点“继续运行”）", "en": ", {n} not started (pick it under Run to continue and press Resume)"},
    "lab_no_active": {"zh": "当前没有正在进行的运行。", "en": "No run is in progress."},
    "lab_cancelling": {"zh": "正在取消：进行中的视频完成后停止，已完成的预测都已保存。", "en": "Cancelling: the run stops after the videos in flight; every finished prediction is saved."},
    "lab_pick_cell": {"zh": "请选择一个视频和一次运行（或点击矩阵中的单元格）。", "en": "Pick a video and a run (or click a cell of the matrix)."},
    "lab_not_in_lib": {"zh": "视频 {v} 不在视频库中，无法播放。", "en": "Video {v} is not in the library, so it cannot play."},
    "lab_empty_answer": {"zh": "（空回答）", "en": "(empty answer)"},
    "lab_no_pred": {"zh": "运行 {r} 还没有这个视频的预测。", "en": "Run {r} has no prediction for this video yet."},
    "lab_verdict_head": {"zh": "**解析结果**（运行 {r} · {e} · {p}）", "en": "**Parsed verdict** (run {r} · {e} · {p})"},
    "lab_field_head": {"zh": "| 字段 | 值 |", "en": "| Field | Value |"},
    "f_status": {"zh": "状态", "en": "status"}, "f_gp": {"zh": "鬼探头", "en": "ghost probing"},
    "f_conf": {"zh": "置信度", "en": "confidence"}, "f_danger": {"zh": "危险等级", "en": "danger level"},
    "f_object": {"zh": "目标类型", "en": "object type"}, "f_onset": {"zh": "出现时间", "en": "onset"},
    "f_reason": {"zh": "理由", "en": "reason"}, "f_latency": {"zh": "延迟", "en": "latency"},
    "lab_cached": {"zh": "（缓存命中，无模型调用）", "en": " (cached, no model call)"},
    "lab_no_set_run": {"zh": "该运行没有标签集，无法评分。", "en": "This run has no label set, so it cannot be scored."},
    "lab_unlabelled": {"zh": "**标签**（{s}）：未标注。", "en": "**Label** ({s}): unlabelled."},
    "lab_label": {"zh": "**标签**（标签集 {s}，来源 {src}）：{b}{on}{note}", "en": "**Label** (label set {s}, source {src}): {b}{on}{note}"},
    "lab_label_onset": {"zh": "，出现于 {t} s", "en": ", onset {t} s"},
    "lab_label_note": {"zh": "；备注：{n}", "en": "; note: {n}"},
    "lab_no_reviews": {"zh": "尚无评审标记。", "en": "No review marks yet."},
    "lab_reviews_head": {"zh": "| 时间 | 标记 | 评审人 | 意见 |", "en": "| Time | Mark | Reviewer | Comment |"},
    "lab_need_mark": {"zh": "请先选择一个评审标记（同意 / 不同意 / 不确定 / 标签有误）。", "en": "Choose a review mark first (agree / disagree / unsure / label wrong)."},
    "lab_need_video_run": {"zh": "请先选择一个视频和一次运行。", "en": "Pick a video and a run first."},
    "lab_reviewed": {"zh": "已记录评审：{m}（{v} · {r}）", "en": "Review saved: {m} ({v} · {r})"},
    "lab_need_video": {"zh": "请先选择一个视频。", "en": "Pick a video first."},
    "lab_need_fix_set": {"zh": "请先选择要修正的标签集。", "en": "Choose the label set to correct first."},
    "lab_bad_onset": {"zh": "出现时间必须是秒数，例如 2.5，而不是“{v}”。", "en": "Onset must be a number of seconds such as 2.5, not '{v}'."},
    "lab_fixed": {"zh": "已把 {v} 的修正保存到新标签集 **{t}**；原标签集 **{p}** 保持不变。在上方选择 {t} 可以按修正后的标签查看和运行。",
                  "en": "The correction of {v} is saved in the new label set **{t}**; the original set **{p}** is unchanged. Pick {t} above to view and run with the corrected labels."},
    "lab_need_two": {"zh": "请选择两次要比较的运行。", "en": "Pick two runs to compare."},
    "lab_saved": {"zh": "已保存新版本 **{n}**（父版本 {b}，sha256 {h}）。", "en": "Saved the new version **{n}** (parent {b}, sha256 {h})."},
    "lab_prompt_problems": {"zh": "有提示词文件未能加载：{p}", "en": "Some prompt files could not be loaded: {p}"},
    "lab_renamed": {"zh": "运行 {r} 现在叫 **{n}**。", "en": "Run {r} is now named **{n}**."},
    "lab_unnamed": {"zh": "运行 {r} 现在没有名称。", "en": "Run {r} has no name now."},
    "lab_hidden": {"zh": "已隐藏运行 {r}：它不再出现在列表、矩阵和报告中（数据仍在，可取消隐藏）。",
                   "en": "Run {r} is hidden: it no longer shows in lists, the matrix and reports (its data stays; unhide brings it back)."},
    "lab_unhidden": {"zh": "运行 {r} 已重新显示。", "en": "Run {r} shows again."},
    "lab_need_confirm": {"zh": "删除前请勾选“确认删除”。", "en": "Tick the confirmation box before deleting."},
    "lab_deleted": {"zh": "已删除运行 {r} 及其评审。", "en": "Deleted run {r} and its reviews."},
    "lab_need_manage": {"zh": "请先选择要管理的运行。", "en": "Pick the run to manage first."},
    "lab_save_where": {"zh": "新版本保存到 {d}；已有版本不会被修改。", "en": "New versions are saved to {d}; existing versions never change."},
    "lab_cmp_head": {"zh": "**比较**（标签集 {s}，{pol}；区间为 95%）", "en": "**Comparison** (label set {s}, {pol}; 95% intervals)"},
    "lab_cmp_sets_differ": {"zh": "  ⚠️ 两次运行的标签集不同。", "en": "  ⚠️ The two runs use different label sets."},
    "pol_counted_wrong": {"zh": "未解析/出错计为错误", "en": "unparsed/errors counted wrong"},
    "pol_excluded": {"zh": "未解析/出错不计入", "en": "unparsed/errors left out"},
    "lab_cmp_rows": {"zh": "运行|引擎 · 提示词|标签集 · n|准确率|平衡准确率|F1|召回率|特异度|未解析 / 出错|覆盖率",
                     "en": "Run|Engine · prompt|Label set · n|Accuracy|Balanced accuracy|F1|Recall|Specificity|Unparsed / errors|Coverage"},
    "lab_cmp_shared": {"zh": "**共同视频** n={n}：A 准确率 {a}，B 准确率 {b}；都对 {rr}，都错 {ww}，A 对 B 错 {rw}，A 错 B 对 {wr}。",
                       "en": "**Shared videos** n={n}: A accuracy {a}, B accuracy {b}; both right {rr}, both wrong {ww}, A right B wrong {rw}, A wrong B right {wr}."},
    "lab_mcnemar": {"zh": "**McNemar 精确检验** p = {p}（{m}）{note}", "en": "**McNemar's exact test** p = {p} ({m}){note}"},
    "lab_mcnemar_none": {"zh": "—（没有共同视频）", "en": "— (no shared videos)"},
    "lab_mcnemar_ns": {"zh": "；p ≥ 0.05：这些视频上看不出两次运行有差别。", "en": "; p ≥ 0.05: no difference between the runs can be seen on these videos."},
    "lab_mcnemar_s": {"zh": "；p < 0.05：差别不太可能是偶然。", "en": "; p < 0.05: the difference is unlikely to be chance."},
    "lab_flips": {"zh": "**翻转的视频**：A 对→B 错（{n1}）：{l1}；A 错→B 对（{n2}）：{l2}。",
                  "en": "**Flipped videos**: A right → B wrong ({n1}): {l1}; A wrong → B right ({n2}): {l2}."},
    "lab_none": {"zh": "无", "en": "none"},
    "lab_cloud_need_preview": {"zh": "请先点“预览任务规格”：提交的就是预览里的任务。",
                               "en": "Preview the job spec first: what is submitted is what the preview shows."},
    "lab_cloud_preview": {"zh": "任务规格如下（{kind}，{n} 个视频，{nodes} 个节点，{where}）：尚未提交，也没有联系 Azure。",
                          "en": "The job spec below ({kind}, {n} videos, {nodes} node(s), {where}): nothing submitted, Azure not contacted."},
    "lab_cloud_kind_cmd": {"zh": "命令任务", "en": "command job"},
    "lab_cloud_kind_par": {"zh": "并行任务", "en": "parallel job"},
    "lab_cloud_not_ready": {"zh": "现在还不能提交：{why}", "en": "It cannot be submitted yet: {why}"},
    "lab_cloud_submitted": {"zh": "已提交 **{job}**（{n} 个视频，运行 {run}）：在“任务”标签页查看状态和成本；日志见 Azure ML studio：{url}",
                            "en": "Submitted **{job}** ({n} videos, run {run}): its state and cost are in the Jobs tab; logs in Azure ML studio: {url}"},
    "lab_cloud_backend": {"zh": "只支持 Azure ML 后端。", "en": "Only the Azure ML backend is supported."},
    "lab_cloud_bad_number": {"zh": "{what}必须是正整数，而不是“{v}”。", "en": "{what} must be a whole number above 0, not '{v}'."},
    # empty states: why a button is off (every one parameterless, so the first render can go through t())
    "lab_no_sets": {"zh": "还没有标签集：先在“视频库”标签页导入标签，才能运行。",
                    "en": "No label set yet: import labels in the Library tab first; then you can run."},
    "lab_resume_none": {"zh": "还没有可以继续的运行：被取消、失败、没跑完或有出错视频的运行会列在这里。",
                        "en": "No run to continue yet: cancelled, failed or unfinished runs and runs with errored videos are listed here."},
    "lab_resume_pick": {"zh": "在“继续的运行”中选择一次运行，才能继续运行或重试出错的视频。",
                        "en": "Pick a run under Run to continue; then you can resume it or retry its errored videos."},
    "lab_manage_none": {"zh": "还没有运行：在上方“运行”中运行一个提示词版本后，才能在这里改名、隐藏或删除。",
                        "en": "No runs yet: run a prompt version under Run above; then you can rename, hide or delete it here."},
    "lab_manage_pick": {"zh": "选择要管理的运行，才能改名、隐藏、取消隐藏或删除。",
                        "en": "Pick the run to manage; then you can rename, hide, unhide or delete it."},
    "lab_manage_confirm": {"zh": "勾选“确认删除”后才能删除这次运行。", "en": "Tick the confirmation box to delete this run."},
    "lab_no_runs_yet": {"zh": "该标签集还没有运行：在上方“运行”中运行一个提示词版本，结果会出现在这里。",
                        "en": "This label set has no runs yet: run a prompt version under Run above and the results show here."},
    "lab_drill_none": {"zh": "还没有可查看的预测：该标签集有运行后，点击矩阵中的单元格。",
                       "en": "No predictions to look at yet: once this label set has a run, click a cell of the matrix."},
    "lab_drill_pick": {"zh": "点击矩阵中的单元格，或选择一个视频和一次运行，才能查看、评审和修正标签。",
                       "en": "Click a cell of the matrix, or pick a video and a run; then you can look, review and correct the label."},
    "lab_drill_need_mark": {"zh": "选择一个评审标记后才能保存评审。", "en": "Choose a review mark; then you can save the review."},
    "lab_cmp_few": {"zh": "该标签集的运行不到两次：至少要有两次运行才能比较。",
                    "en": "This label set has fewer than two runs: comparing needs two."},
    "lab_cmp_pick": {"zh": "选择运行 A 和运行 B（两次不同的运行），才能比较。",
                     "en": "Pick run A and run B (two different runs); then you can compare them."},
})
HINT_KEYS = ("lab_need_engine", "lab_need_prompt", "lab_need_set", "lab_no_sets", "lab_resume_none", "lab_resume_pick",
             "lab_manage_none", "lab_manage_pick", "lab_manage_confirm", "lab_drill_none", "lab_drill_pick",
             "lab_drill_need_mark", "lab_cmp_few", "lab_cmp_pick")


def hint_md(key: str | None, lang: str = "zh") -> str:
    """The one sentence saying why a button is off ("" when nothing is missing)."""
    return "⚠️ " + msg.escape_md(msg.m(key, lang)) if key else ""


# the first render of those sentences, in the browser's language before any handler has run
add_translations({hint_md(k, "zh"): hint_md(k, "en") for k in HINT_KEYS})


def hint_static(key: str | None):
    return t(hint_md(key, "zh")) if key else ""
msg.add_error_translations([
    (r"Azure ML needs azure-ai-ml and azure-identity: pip install (?P<pkg>.+?)\.?",
     "Azure ML 需要 azure-ai-ml 和 azure-identity：pip install {pkg}。"),
    (r"Azure ML is not configured: set (?P<vars>.+?) \(or AZUREML_CONFIG to the studio's config\.json\); (?P<rest>.+)",
     "Azure ML 尚未配置：请设置 {vars}（或把 AZUREML_CONFIG 设为 studio 的 config.json）；凭据只来自 "
     "DefaultAzureCredential（az login、托管标识或 AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET）。"),
    (r"Name a compute cluster (?P<rest>.+)", "请指定计算集群（GHOSTPROBE_AZUREML_COMPUTE 或 --compute），或无服务器的实例类型（--instance-type，例如 Standard_NC24s_v3）。"),
    (r"Say where the videos are in Azure: (?P<rest>.+)",
     "请说明视频在 Azure 中的位置：azureml://datastores/<存储>/paths/<目录>，或数据资产 azureml:<名称>:<版本>（GHOSTPROBE_AZUREML_VIDEOS）。"),
    (r"configured, not yet contacted: workspace (?P<ws>\S+), (?P<where>.+?)\.?", "已配置，尚未连接：工作区 {ws}，{where}。"),
    (r"Azure ML refused to (?P<what>.+?) \(HTTP (?P<c>\d+)\): (?P<rest>.+)",
     "Azure ML 拒绝了请求（{what}，HTTP {c}）：已登录的身份需要工作区的 AzureML Data Scientist 角色。"),
    (r"Azure ML could not (?P<what>.+?): (?P<why>.+)", "Azure ML 操作失败（{what}）：{why}"),
    (r"A videollama2 job runs as one command job (?P<rest>.+)", "videollama2 任务以单个命令任务运行（工作进程用 device_map=auto 把模型分布到一个节点的多块 GPU 上）：请去掉并行节点数。"),
    (r"A videollama2 job uses one node (?P<rest>.+)", "videollama2 任务只用一个节点（节点数 1）：命令任务的每个节点都会回答每个视频。"),
])
msg.add_error_translations([
    (r"the new version asks the same as (?P<ref>\S+); (?P<rest>.+)", "新版本与 {ref} 的内容相同，没有保存：请修改系统提示词、用户提示词或少样本示例。"),
    (r"Hiding runs needs .+", "这个版本还不能隐藏运行。"),
    (r"Deleting runs needs .+", "这个版本还不能删除运行。"),
    (r"Run (?P<id>\S+) is still running; cancel it before deleting it\.", "运行 {id} 仍在进行：请先取消再删除。"),
])

MARKS = [(t("同意"), "agree"), (t("不同意"), "disagree"), (t("不确定"), "unsure"), (t("标签有误"), "label-wrong")]
MARK_NAMES = {"zh": {"agree": "同意", "disagree": "不同意", "unsure": "不确定", "label-wrong": "标签有误"},
              "en": {"agree": "agree", "disagree": "disagree", "unsure": "unsure", "label-wrong": "label wrong"}}
POLICY_CHOICES = [(t("计为错误"), "counted_wrong"), (t("不计入"), "excluded")]
FIX_CHOICES = [(t("鬼探头"), "ghost_probing"), (t("非鬼探头"), "none"), (t("加塞（非鬼探头）"), "cut_in")]
MATRIX_DEFAULT_RUNS = 4

CELL_STYLE = {  # class → (background, text colour)
    "right": ("#c8e6c9", "#1b5e20"),
    "wrong": ("#ffcdd2", "#b71c1c"),
    "unparsed": ("#ffe0b2", "#e65100"),
    "error": ("#cfd8dc", "#263238"),
    "unlabelled": ("#eeeeee", "#424242"),
    "missing": ("#ffffff", "#9e9e9e"),
}

MATRIX_JS = """
element.addEventListener('click', (e) => {
  const td = e.target.closest('td[data-run]');
  if (td) trigger('click', {video: td.dataset.video, run: td.dataset.run});
});
"""

MATRIX_CSS = """
table.lab-matrix { border-collapse: collapse; font-size: 13px; }
table.lab-matrix th, table.lab-matrix td { border: 1px solid #ddd; padding: 4px 8px; text-align: center; }
table.lab-matrix td.vid, table.lab-matrix td.lbl { text-align: left; white-space: nowrap; }
table.lab-matrix td[data-run] { cursor: pointer; }
table.lab-matrix td[data-run]:hover { outline: 2px solid #1f77b4; }
table.lab-matrix tfoot td { font-size: 12px; background: #fafafa; }
table.lab-matrix th.partial { background: repeating-linear-gradient(45deg, #fff, #fff 4px, #fde2e2 4px, #fde2e2 8px); }
.lab-legend span { display: inline-block; padding: 2px 8px; margin: 2px 4px 6px 0; border-radius: 4px; font-size: 12px; }
"""

RUN_BTN_JS = """(...args) => { document.querySelectorAll('#lab-run, #lab-resume, #lab-retry').forEach(b => {
  const el = b.tagName === 'BUTTON' ? b : b.querySelector('button'); if (el) el.disabled = true; }); return args; }"""


# -- prompts ------------------------------------------------------------------------------------------
def prompt_save_dir(state: AppState) -> Path:
    """Where new versions go: $GHOSTPROBE_PROMPTS (first folder), else <data dir>/prompts."""
    env = os.environ.get("GHOSTPROBE_PROMPTS")
    if env:
        return Path(env.split(os.pathsep)[0]).expanduser()
    return state.config.data_dir / "prompts"


def load_library(state: AppState):
    from prompts import PromptLibrary, default_dirs

    dirs = list(default_dirs())
    user = prompt_save_dir(state)
    if user.is_dir() and all(Path(d).resolve() != user.resolve() for d in dirs):
        dirs.append(user)
    return PromptLibrary.load(dirs, strict=False)


def prompt_choices(plib) -> list[tuple[str, str]]:
    return [(f"{p.ref} · {p.title}", p.ref) for p in plib.all() if p.kind == "detect"]


def default_prompt(plib) -> str | None:
    try:
        return plib.detect_default().ref
    except Exception:
        refs = [v for _, v in prompt_choices(plib)]
        return refs[-1] if refs else None


def diff_html(text: str, note: str = "", lang: str = "zh") -> str:
    """A unified diff as coloured lines (+ green, - red)."""
    if not text:
        return f'<div id="lab-diff-body" class="lab-diff-empty">{html.escape(note or msg.m("lab_no_diff", lang))}</div>'
    out = []
    for line in text.splitlines():
        style = ""
        if line.startswith("+") and not line.startswith("+++"):
            style = "background:#e6ffed;color:#22863a"
        elif line.startswith("-") and not line.startswith("---"):
            style = "background:#ffeef0;color:#b31d28"
        elif line.startswith("@@"):
            style = "color:#6f42c1"
        out.append(f'<div style="{style}">{html.escape(line) or "&nbsp;"}</div>')
    return ('<div id="lab-diff-body" style="font-family:monospace;font-size:12px;white-space:pre-wrap;'
            'border:1px solid #ddd;border-radius:6px;padding:6px;max-height:420px;overflow:auto">'
            + "".join(out) + "</div>")


def prompt_view(plib, ref: str, lang: str = "zh") -> tuple[str, str, str, str, str, str]:
    """(yaml, diff html, system, user, few_shot, notes) of a version."""
    from prompts import diff

    p = plib.get(ref)
    if p.parent:
        try:
            parent = plib.get(p.parent)
            d = diff_html(diff(parent, p), msg.m("lab_same_parent", lang, p=p.parent), lang)
        except Exception:
            d = diff_html("", msg.m("lab_parent_gone", lang, p=p.parent), lang)
    else:
        d = diff_html("", msg.m("lab_root_version", lang, r=p.ref), lang)
    return p.to_yaml(), d, p.system, p.user, p.few_shot or "", p.notes or ""


# -- label sets, engines, runs ------------------------------------------------------------------------
def label_set_choices(state: AppState, lang: str = "zh") -> list[tuple[str, str]]:
    out = []
    for s in lab.list_sets(state.store):
        weak = msg.m("weak_set", lang) if s["weak"] else ""
        out.append((f"{s['name']} ({s['videos']}){weak}", s["name"]))
    return out


def default_label_set(state: AppState) -> str | None:
    """The label set used last on this deployment: the newest visible run's set when it still exists; else
    ``demo``; else the newest set."""
    names = [s["name"] for s in lab.list_sets(state.store)]
    for r in RA.list_runs(state.store, limit=20):
        if r.get("label_set") in names:
            return r["label_set"]
    if "demo" in names:
        return "demo"
    return names[-1] if names else None


def video_choices(state: AppState, label_set: str | None) -> list[str]:
    if not label_set:
        return []
    try:
        return [r["video_id"] for r in lab.list_labels(state.store, label_set)]
    except lab.LabelError:
        return []


def engine_choices(default: str, lang: str = "zh") -> tuple[list[tuple[str, str]], str | None]:
    from engines.registry import engine_status

    try:
        rows = engine_status(local_only=True)  # batch engines are submitted (云端评测 below), not run here
    except Exception as e:  # never take the tab down for an engine listing
        log.warning("engine status failed: %s", e)
        rows = []
    choices = []
    for r in rows:
        tag = msg.m("lab_engine_ok", lang) if r["available"] else msg.m(
            "lab_engine_no", lang, why=msg.translate(r["reason"], lang))
        choices.append((f"{r['name']} · {r['title']}（{tag}）" if lang == "zh" else f"{r['name']} · {r['title']} ({tag})",
                        r["name"]))
    names = [r["name"] for r in rows]
    value = default if default in names else ("baseline" if "baseline" in names else (names[0] if names else None))
    return choices, value


def takes_prompt(engine_name: str | None) -> bool:
    """Only chat models read a prompt (engines.base.Engine.takes_prompt); a detector's run carries none."""
    from engines.registry import all_engines

    cls = all_engines().get(engine_name or "")
    kinds = set(getattr(cls, "kinds", ()) or ()) if cls else {"chat"}
    return "chat" in kinds and "detector" not in kinds


def run_title(r: dict[str, Any], lang: str = "zh") -> str:
    prompt = f"{r.get('prompt_id')}@{r.get('prompt_version')}" if r.get("prompt_id") else "—"
    model = f" · {str(r['model']).rsplit('/', 1)[-1]}" if r.get("model") else ""
    name = f"{r['name']} · " if r.get("name") else ""
    planned, scored, _ = msg.coverage_counts(r)
    cov = f" · {scored}/{planned}" if planned is not None else ""
    hidden = msg.m("hidden_tag", lang) if r.get("hidden") else ""
    st = msg.run_status(r, lang)
    return f"{name}{r['engine']}{model} · {prompt} · {r['run_id']}{cov}（{st}）{hidden}" if lang == "zh" else \
        f"{name}{r['engine']}{model} · {prompt} · {r['run_id']}{cov} ({st}){hidden}"


def run_choices(state: AppState, label_set: str | None = None, lang: str = "zh",
                include_hidden: bool = False) -> list[tuple[str, str]]:
    kw = {"label_set": label_set} if label_set else {}
    rows = RA.list_runs(state.store, include_hidden=include_hidden, **kw)
    return [(run_title(r, lang), r["run_id"]) for r in rows]


def resumable_choices(state: AppState, lang: str = "zh") -> list[tuple[str, str]]:
    """Runs worth continuing: cancelled, failed or partial ones, and any with errored videos."""
    out = []
    for r in RA.list_runs(state.store):
        if r.get("status") == "imported" or r.get("status") == "running":
            continue
        planned, scored, left = msg.coverage_counts(r)
        if r.get("status") in ("cancelled", "failed", "partial") or left or int(r.get("errors") or 0):
            out.append((run_title(r, lang), r["run_id"]))
    return out


def run_need(ref: str | None, eng: str | None, ls: str | None, has_sets: bool = True) -> str | None:
    """The catalogue key of what Run still needs (engine, prompt for a chat model, label set), or None."""
    if not eng:
        return "lab_need_engine"
    if takes_prompt(eng) and not ref:
        return "lab_need_prompt"
    if not ls:
        return "lab_need_set" if has_sets else "lab_no_sets"
    return None


def resume_flags(row: dict[str, Any] | None) -> tuple[bool, bool]:
    """(Resume on, Retry errors on) for a run: resume while videos are left to run (or it was cancelled /
    failed / cut off while running), retry while some videos errored; an imported run is neither."""
    if not row or row.get("status") == "imported":
        return False, False
    planned, _, _ = msg.coverage_counts(row)
    in_library = (planned or 0) - int(row.get("missing") or 0)
    todo = max(in_library - int(row.get("predictions") or 0), 0)
    return bool(todo or row.get("status") in ("cancelled", "failed", "running")), int(row.get("errors") or 0) > 0


def manage_flags(row: dict[str, Any] | None, sure: bool) -> tuple[bool, bool, bool, bool]:
    """(Rename, Hide, Unhide, Delete) on for a run: hide only a shown run, unhide only a hidden one, delete
    only with the confirmation ticked."""
    if not row:
        return False, False, False, False
    hidden = bool(row.get("hidden"))
    return True, not hidden, hidden, bool(sure)


def default_runs(state: AppState, label_set: str | None) -> list[str]:
    return [v for _, v in run_choices(state, label_set)[:MATRIX_DEFAULT_RUNS]] if label_set else []


def fmt_pct_ci(v: float | None, ci: list[float] | None, lang: str = "zh") -> str:
    if v is None:
        return msg.m("n_a", lang)
    s = f"{100 * v:.0f}%"
    return s + (f" [{100 * ci[0]:.0f}–{100 * ci[1]:.0f}%]" if ci else "")


# -- the matrix ---------------------------------------------------------------------------------------
def classify(p: dict[str, Any] | None, has_label: bool) -> str:
    """Kept for callers of the old API: the class of a prediction already scored on its own label set."""
    if p is None:
        return "missing"
    label = None if not has_label or p.get("correct") is None else (
        p["ghost_probing"] if p["correct"] else (None if p.get("ghost_probing") is None else not p["ghost_probing"]))
    return MX.classify(p, label)


def _cell_text(p: dict[str, Any] | None, cls: str, lang: str) -> str:
    if p is None:
        return "—"
    if cls == "error":
        return msg.m("cell_txt_error", lang)
    if cls == "unparsed":
        return msg.m("cell_txt_unparsed", lang)
    mark = {"right": "✓ ", "wrong": "✗ "}.get(cls, "")
    answer = msg.m("cell_yes", lang) if p["ghost_probing"] else msg.m("cell_no", lang)
    conf = f" {p['confidence']:.2f}" if p.get("confidence") is not None else ""
    return f"{mark}{answer}{conf}"


def matrix_runs(state: AppState, run_ids: list[str] | None) -> list[dict[str, Any]]:
    out = []
    for rid in run_ids or []:
        try:
            out.append(R.get_run(state.store, rid))
        except R.RunError:
            continue
    return out


def matrix_html(state: AppState, label_set: str | None, run_ids: list[str] | None, lang: str = "zh") -> str:
    e = html.escape
    if not label_set:
        return f'<p id="lab-matrix-empty">{e(msg.m("lab_pick_set", lang))}</p>'
    labels = lab.list_labels(state.store, label_set)
    if not labels:
        return f'<p id="lab-matrix-empty">{e(msg.m("lab_no_labels", lang, s=label_set))}</p>'
    runs = matrix_runs(state, run_ids)
    preds = {r["run_id"]: R.predictions(state.store, r["run_id"]) for r in runs}
    rows = MX.build(labels, runs, preds, key=lab.video_key)
    legend = "".join(f'<span style="background:{bg};color:{fg}">{e(msg.m("cell_" + cls, lang))}</span>'
                     for cls, (bg, fg) in CELL_STYLE.items())
    head = [f"<th>{e(msg.m('lab_col_video', lang))}</th><th>{e(msg.m('lab_col_label', lang))}</th>"]
    foot = [f'<td class="vid" colspan="2">{e(msg.m("lab_foot", lang))}</td>']
    for r in runs:
        planned, scored, left = msg.coverage_counts(r)
        cov = f"{scored}/{planned}" if planned is not None else "—"
        partial = bool(left)
        status = msg.run_status(r, lang)
        head.append(f'<th class="{"partial" if partial else ""}" data-coverage="{e(cov)}" title="{e(run_title(r, lang))}">'
                    f'{e(r["engine"])}{" · " + e(str(r["model"]).rsplit("/", 1)[-1]) if r.get("model") else ""}<br>'
                    f'{e(str(r.get("prompt_id") or "—"))}@{e(str(r.get("prompt_version") or "—"))}<br>'
                    f'<small>{e(r["run_id"])}</small><br><small class="coverage">{e(cov)}'
                    f'{" · " + e(status) if r.get("status") != "done" or partial else ""}</small></th>')
        try:
            m = M.run_metrics(state.store, r["run_id"])
            if r.get("label_set") == label_set:
                foot.append("<td>" + msg.m("lab_foot_cell", lang, acc=e(fmt_pct_ci(m["accuracy"], m["accuracy_ci"], lang)),
                                           n=m["n"], u=m["unparsed"], e=m["errors"], cov=e(cov)) + "</td>")
            else:
                foot.append(f"<td>{e(msg.m('lab_foot_other', lang, s=r.get('label_set')))}</td>")
        except Exception as ex:  # a broken run must not hide the others
            foot.append(f"<td>{e(msg.error_text(ex, lang))}</td>")
    body = []
    for row in rows:
        vid = row["video_id"]
        cells = [f'<td class="vid">{e(vid)}</td>', f'<td class="lbl">{e(msg.badge(row["label"], lang))}</td>']
        for c in row["cells"]:
            cls, p = c["class"], c["prediction"]
            bg, fg = CELL_STYLE[cls]
            tip = f"{vid} · {c['run_id']} · {msg.m('cell_' + cls, lang)}"
            if p is not None and p.get("reason"):
                tip += " · " + str(p["reason"])[:200]
            cells.append(f'<td class="cell cell-{cls}" data-status="{cls}" data-video="{e(vid)}" '
                         f'data-run="{e(c["run_id"])}" title="{e(tip)}" style="background:{bg};color:{fg}">'
                         f"{e(_cell_text(p, cls, lang))}</td>")
        body.append(f'<tr data-video="{e(vid)}">{"".join(cells)}</tr>')
    caption = msg.m("lab_matrix_caption", lang, s=e(label_set), v=len(labels), r=len(runs))
    table = (f'<table class="lab-matrix"><thead><tr>{"".join(head)}</tr></thead><tbody>{"".join(body)}</tbody>'
             f'<tfoot><tr>{"".join(foot)}</tr></tfoot></table>')
    if runs:
        return (f'<style>{MATRIX_CSS}</style><div class="lab-legend">{legend}</div><p><small>{caption}</small></p>'
                f'{table}<p><small>{e(msg.m("lab_click_hint", lang))}</small></p>')
    # no run shown: say so first (no run of this set yet, or none picked), then the videos and their labels
    note = msg.m("lab_no_runs" if run_choices(state, label_set) else "lab_no_runs_yet", lang)
    return (f'<style>{MATRIX_CSS}</style><p id="lab-matrix-empty">⚠️ {e(note)}</p>'
            f'<p><small>{caption}</small></p>{table}')


# -- drill-down ---------------------------------------------------------------------------------------
def find_prediction(state: AppState, run_id: str, video_id: str) -> dict[str, Any] | None:
    key = lab.video_key(video_id)
    for p in R.predictions(state.store, run_id):
        if lab.video_key(p["video_id"]) == key:
            return p
    return None


def library_id(state: AppState, video_id: str) -> str | None:
    ids = [r["video_id"] for r in state.store.query("SELECT video_id FROM videos ORDER BY video_id")]
    if video_id in ids:
        return video_id
    key = lab.video_key(video_id)
    return next((v for v in ids if lab.video_key(v) == key), None)


def verdict_md(p: dict[str, Any] | None, run: dict[str, Any], lang: str = "zh") -> str:
    e = msg.escape_md
    if p is None:
        return msg.md("lab_no_pred", lang, r=run["run_id"])
    gp = {True: msg.m("yes_gp", lang), False: msg.m("no", lang)}.get(
        p["ghost_probing"], msg.m("unparsed_not_no", lang) if p["status"] == "unparsed" else msg.m("errored", lang))

    def v(x: Any, unit: str = "") -> str:
        return msg.m("none_given", lang) if x is None or x == "" else f"{e(x)}{unit}"

    lat = msg.m("unknown", lang) if p.get("latency_s") is None else f"{p['latency_s']:.2f} s"
    reason = e(msg.translate(str(p.get("reason") or "—"), lang)).replace("<br>", " ")
    prompt = f"{run.get('prompt_id') or '—'}@{run.get('prompt_version') or '—'}" if run.get("prompt_id") else "—"
    f = lambda k, en: f"{msg.m(k, lang)} {en}" if lang == "zh" else msg.m(k, lang)  # noqa: E731
    return "\n".join([
        msg.md("lab_verdict_head", lang, r=run["run_id"], e=run["engine"], p=prompt),
        "", msg.m("lab_field_head", lang), "|---|---|",
        f"| {f('f_status', 'status')} | `{p['status']}` |",
        f"| {f('f_gp', 'ghost_probing')} | {gp} |",
        f"| {f('f_conf', 'confidence')} | {v(p.get('confidence'))} |",
        f"| {f('f_danger', 'danger_level')} | {e(msg.danger(p.get('danger_level'), lang))} |",
        f"| {f('f_object', 'object_type')} | {e(msg.object_type(p.get('object_type'), lang))} |",
        f"| {f('f_onset', 'onset')} | {v(p.get('onset_s'), ' s')} |",
        f"| {f('f_reason', 'reason')} | {reason} |",
        f"| {f('f_latency', 'latency')} | {lat}{msg.m('lab_cached', lang) if p.get('cached') else ''} |",
    ])


def label_md(state: AppState, label_set: str | None, video_id: str, lang: str = "zh") -> str:
    if not label_set:
        return msg.m("lab_no_set_run", lang)
    key = lab.video_key(video_id)
    try:
        rows = [r for r in lab.list_labels(state.store, label_set) if lab.video_key(r["video_id"]) == key]
    except lab.LabelError as ex:
        return msg.error_md(ex, lang)
    if not rows:
        return msg.md("lab_unlabelled", lang, s=label_set)
    r = rows[0]
    onset = msg.m("lab_label_onset", lang, t=f"{r['onset_s']:g}") if r.get("onset_s") is not None else ""
    note = msg.md("lab_label_note", lang, n=r["note"]) if r.get("note") else ""
    return msg.m("lab_label", lang, s=msg.escape_md(label_set), src=msg.escape_md(r.get("source") or "—"),
                 b=msg.escape_md(msg.badge(r, lang)), on=onset, note=note)


def reviews_md(state: AppState, run_id: str, video_id: str, lang: str = "zh") -> str:
    rows = R.reviews(state.store, run_id, video_id)
    if not rows:
        return msg.m("lab_no_reviews", lang)
    lines = [msg.m("lab_reviews_head", lang), "|---|---|---|---|"]
    for r in rows:
        c = msg.escape_md(str(r.get("comment") or "")).replace("<br>", " ")
        mark = MARK_NAMES[msg.norm(lang)].get(r["mark"], r["mark"])
        lines.append(f"| {str(r['created_at'])[:19]} | {mark} | {msg.escape_md(r.get('reviewer') or '—')} | {c} |")
    return "\n".join(lines)


def compare_md(cmp: dict[str, Any], lang: str = "zh", coverage: dict[str, str] | None = None) -> str:
    a, b, sh = cmp["a"], cmp["b"], cmp["shared"]
    e = msg.escape_md
    pol = msg.m(f"pol_{cmp['policy']}", lang)
    names = msg.m("lab_cmp_rows", lang).split("|")
    cov = coverage or {}

    def row(name: str, key: str) -> str:
        return f"| {name} | {fmt_pct_ci(a.get(key), a.get(key + '_ci'), lang)} | {fmt_pct_ci(b.get(key), b.get(key + '_ci'), lang)} |"

    p = cmp.get("mcnemar_p")
    flips = cmp["flipped"]
    none = msg.m("lab_none", lang)
    note = "" if p is None else msg.m("lab_mcnemar_ns" if p >= 0.05 else "lab_mcnemar_s", lang)
    lines = [
        msg.md("lab_cmp_head", lang, s=cmp["label_set"], pol=pol) + (msg.m("lab_cmp_sets_differ", lang)
                                                                     if cmp.get("label_sets_differ") else ""),
        "", "| | A | B |", "|---|---|---|",
        f"| {names[0]} | `{a['run_id']}` | `{b['run_id']}` |",
        f"| {names[1]} | {e(a.get('engine'))} · {e(a.get('prompt_id'))}@{e(a.get('prompt_version'))} | "
        f"{e(b.get('engine'))} · {e(b.get('prompt_id'))}@{e(b.get('prompt_version'))} |",
        f"| {names[2]} | {e(a.get('label_set'))} · n={a['n']} | {e(b.get('label_set'))} · n={b['n']} |",
        row(names[3], "accuracy"), row(names[4], "balanced_accuracy"), row(names[5], "f1"),
        row(names[6], "recall"), row(names[7], "specificity"),
        f"| {names[8]} | {a['unparsed']} / {a['errors']} | {b['unparsed']} / {b['errors']} |",
        f"| {names[9]} | {cov.get(a['run_id'], '—')} | {cov.get(b['run_id'], '—')} |",
        "",
        msg.m("lab_cmp_shared", lang, n=sh["n"], a=fmt_pct_ci(sh["a_accuracy"], sh["a_accuracy_ci"], lang),
              b=fmt_pct_ci(sh["b_accuracy"], sh["b_accuracy_ci"], lang), rr=sh["both_right"], ww=sh["both_wrong"],
              rw=sh["a_right_b_wrong"], wr=sh["a_wrong_b_right"]),
        "",
        msg.m("lab_mcnemar", lang, p=msg.m("lab_mcnemar_none", lang) if p is None else f"{p:.4g}",
              m=cmp.get("mcnemar_method"), note=note),
        "",
        msg.m("lab_flips", lang, n1=len(flips["right_to_wrong"]),
              l1=", ".join(f"`{v}`" for v in flips["right_to_wrong"]) or none,
              n2=len(flips["wrong_to_right"]), l2=", ".join(f"`{v}`" for v in flips["wrong_to_right"]) or none),
    ]
    return "\n".join(lines)


def run_summary_md(summary: dict[str, Any], label_set: str | None, lang: str = "zh", run: dict[str, Any] | None = None) -> str:
    s = summary
    head = {"done": msg.m("lab_done", lang), "cancelled": msg.m("lab_cancelled", lang)}.get(
        s["status"], msg.m("lab_ended", lang, s=msg.status_name(s["status"], lang)))
    extra = msg.m("lab_not_started", lang, n=s["not_started"]) if s.get("not_started") else ""
    cov = msg.coverage(run, lang) if run else "—"
    return msg.md("lab_summary", lang, head=head, r=s["run_id"], s=label_set or "—", p=s["processed"], ok=s["ok"],
                  u=s["unparsed"], e=s["errors"], extra=extra, cov=cov, txt=s["text"], w=s["wall_s"])


# -- cloud evaluation ---------------------------------------------------------------------------------
def _azure_defaults() -> dict[str, str]:
    """The panel's first values: the workspace's compute, SKU and videos from the environment (no SDK import)."""
    try:
        from engines.cloud.azureml import AzureMLSettings

        s = AzureMLSettings.from_env()
        return {"compute": s.compute or "", "instance_type": s.instance_type or "", "videos": s.videos or ""}
    except Exception as e:  # never take the tab down for a default
        log.warning("Azure ML defaults: %s", e)
        return {"compute": "", "instance_type": "", "videos": ""}


def _cloud_where(out: dict[str, Any]) -> str:
    """Where a previewed job runs, in words: cluster (× SKU) or serverless SKU."""
    job = out.get("job") or {}
    compute = job.get("compute") or (job.get("settings") or {}).get("default_compute")
    sku = (out.get("location") or "").split(":")[1] if out.get("location") else None
    compute = str(compute).split(":", 1)[1] if str(compute or "").startswith("azureml:") else compute
    where = f"{compute}" if compute else "serverless"
    return where + (f" · {sku}" if sku else "")


def _cloud_spec_text(out: dict[str, Any], full_yaml: str) -> str:
    """The dry run's spec as YAML under a few comment lines with what matters most (the editor shows the top)."""
    job = out.get("job") or {}
    par = (job.get("jobs") or {}).get("ghostprobe_eval_shard")
    comp = job.get("component") or {}
    env = (par or {}).get("task", {}).get("environment") if par else job.get("environment")
    image = env.get("image") if isinstance(env, dict) else env
    if par:
        run = f"parallel job: {par['task'].get('entry_script')} {par['task'].get('program_arguments') or ''}".strip()
        run += (f"; {par.get('mini_batch_size')} videos per task, {par.get('retry_settings', {}).get('max_retries')} "
                f"retries per failed mini-batch")
    else:
        run = f"command job: {comp.get('command') or job.get('command')}"
    videos = ((job.get("inputs") or {}).get("videos") or {}).get("path")
    head = ["# what would be submitted: the same dry run as `ghostprobe jobs submit-eval --dry-run`",
            f"# {run}", f"# compute: {_cloud_where(out)} × {out.get('nodes')} node(s)", f"# environment: {image}",
            f"# videos: {len(out['plan']['videos'])} from {videos}", ""]
    return "\n".join(head) + full_yaml


# -- the tab ------------------------------------------------------------------------------------------
def build(state: AppState, shared: dict[str, dict] | None = None) -> dict[str, Any]:
    plib0 = load_library(state)
    p_choices = prompt_choices(plib0)
    p_default = default_prompt(plib0)
    ls_default = default_label_set(state)
    e_choices, e_default = engine_choices(state.config.default_engine or "baseline")
    sets0 = label_set_choices(state)
    runs0 = run_choices(state, ls_default)
    resumable0 = resumable_choices(state)
    all_runs0 = run_choices(state, include_hidden=True)
    need0 = run_need(p_default, e_default, ls_default, bool(sets0))
    active: dict[str, Any] = {"cancel": None, "run": None}  # the one run this server is making now
    run_lock = threading.Lock()
    last_run = gr.State("")  # the id of the latest run made here; the Reports tab listens to it
    try:
        v0 = prompt_view(plib0, p_default) if p_default else ("", "", "", "", "", "")
    except Exception as e:  # a broken prompt file must not take the tab down
        log.warning("prompt view failed: %s", e)
        v0 = ("", "", "", "", "", "")

    with gr.Row():
        prompt_dd = gr.Dropdown(choices=p_choices, value=p_default, label=t("提示词版本"), scale=4,
                                elem_id="lab-prompt")
        refresh = gr.Button(t("刷新"), scale=0, elem_id="lab-refresh")
    with gr.Accordion(t("查看与编辑"), open=True, elem_id="lab-edit"):
        with gr.Row():
            with gr.Column(scale=1):
                yaml_view = gr.Code(language="yaml", value=v0[0], label=t("YAML（只读）"), interactive=False,
                                    elem_id="lab-yaml", max_lines=30)
                gr.Markdown("**" + t("与父版本的差异") + "**")
                diff_view = gr.HTML(v0[1], elem_id="lab-diff")
            with gr.Column(scale=1):
                system = gr.Textbox(value=v0[2], label=t("系统提示词 (system)"), lines=8, max_lines=20, elem_id="lab-system")
                user = gr.Textbox(value=v0[3], label=t("用户提示词 (user)"), lines=5, max_lines=15, elem_id="lab-user")
                few_shot = gr.Textbox(value=v0[4], label=t("少样本示例 (few-shot)"), lines=3, max_lines=12,
                                      elem_id="lab-fewshot")
                notes = gr.Textbox(value=v0[5], label=t("版本说明 (notes)"), lines=2, elem_id="lab-notes",
                                   placeholder=t("这个版本改了什么、为什么"))
                save = gr.Button(t("另存为新版本"), variant="primary", elem_id="lab-save")
                save_status = gr.Markdown(elem_id="lab-save-status")
                save_where = gr.Markdown("", elem_id="lab-save-where")  # filled on page load (tests wait for it)

    with gr.Accordion(t("运行"), open=True, elem_id="lab-run-box"):
        with gr.Row():
            engine = gr.Dropdown(choices=e_choices, value=e_default, label=t("引擎"), scale=2, elem_id="lab-engine")
            label_set = gr.Dropdown(choices=sets0, value=ls_default, label=t("标签集"), scale=2,
                                    elem_id="lab-label-set")
            videos = gr.Dropdown(choices=video_choices(state, ls_default), value=[], multiselect=True,
                                 label=t("视频子集（留空 = 整个标签集）"), scale=3, elem_id="lab-videos")
            run_name = gr.Textbox(label=t("运行名称（可选，唯一）"), placeholder=t("例如 baseline-v3"), scale=2,
                                  elem_id="lab-run-name")
        with gr.Row():
            run_btn = gr.Button(t("开始运行"), variant="primary", elem_id="lab-run", interactive=need0 is None)
            cancel_btn = gr.Button(t("取消"), variant="stop", elem_id="lab-cancel")
        run_hint = gr.Markdown(hint_static(need0), elem_id="lab-run-hint")
        # every button below is off until what it needs is picked (the page load and each pick say which)
        with gr.Row():
            resume_dd = gr.Dropdown(choices=resumable0, value=None, label=t("继续的运行"), scale=4,
                                    elem_id="lab-resume-run")
            resume_btn = gr.Button(t("继续运行"), scale=1, elem_id="lab-resume", interactive=False)
            retry_btn = gr.Button(t("重试出错的视频"), scale=1, elem_id="lab-retry", interactive=False)
        resume_hint = gr.Markdown(hint_static("lab_resume_pick" if resumable0 else "lab_resume_none"),
                                  elem_id="lab-resume-hint")
        run_status = gr.Markdown(elem_id="lab-run-status")

    az0 = _azure_defaults()
    with gr.Accordion(t("云端评测（Azure ML）"), open=False, elem_id="lab-cloud"):
        gr.Markdown(t("用上面“运行”中的提示词版本、引擎、标签集和视频子集，在 Azure ML 的 GPU 集群上评测：先预览任务规格，再提交。"))
        with gr.Row():
            c_backend = gr.Dropdown(choices=[("Azure ML", "azureml")], value="azureml", label=t("后端"), scale=1,
                                    elem_id="lab-cloud-backend")
            c_model = gr.Textbox(label=t("模型（可选）"), scale=2, elem_id="lab-cloud-model",
                                 placeholder="DAMO-NLP-SG/VideoLLaMA2.1-7B-16F")
            c_compute = gr.Textbox(value=az0["compute"], label=t("计算集群"), scale=2, elem_id="lab-cloud-compute",
                                   placeholder="gpu-v100x4")
            c_sku = gr.Textbox(value=az0["instance_type"], label=t("实例类型（SKU）"), scale=2, elem_id="lab-cloud-sku",
                               placeholder="Standard_NC24s_v3")
        with gr.Row():
            c_count = gr.Number(value=1, precision=0, minimum=1, label=t("节点数"), scale=1, elem_id="lab-cloud-count")
            c_parallel = gr.Number(value=0, precision=0, minimum=0, label=t("并行节点数（0 = 单个命令任务）"), scale=1,
                                   elem_id="lab-cloud-parallel")
            c_videos = gr.Textbox(value=az0["videos"], label=t("视频位置（Azure）"), scale=3, elem_id="lab-cloud-videos",
                                  placeholder="azureml://datastores/workspaceblobstore/paths/dada-dev/")
        with gr.Row():
            c_preview = gr.Button(t("预览任务规格"), elem_id="lab-cloud-preview")
            c_submit = gr.Button(t("提交到 Azure ML"), variant="primary", interactive=False, elem_id="lab-cloud-submit")
        c_status = gr.Markdown(elem_id="lab-cloud-status")
        c_spec = gr.Code(language="yaml", label=t("任务规格（预览，未提交）"), interactive=False, elem_id="lab-cloud-spec",
                         max_lines=40)
    c_params = gr.State(None)  # what the preview showed: the submit sends exactly that
    cloud_job = gr.State("")  # the id of the job submitted last; the Jobs tab listens to it

    with gr.Accordion(t("管理运行"), open=False, elem_id="lab-manage"):
        with gr.Row():
            manage_dd = gr.Dropdown(choices=all_runs0, value=None, label=t("要管理的运行"),
                                    scale=4, elem_id="lab-manage-run")
            new_name = gr.Textbox(label=t("新名称（留空 = 清除名称）"), scale=2, elem_id="lab-manage-name")
            rename_btn = gr.Button(t("改名"), scale=0, elem_id="lab-manage-rename", interactive=False)
        with gr.Row():
            hide_btn = gr.Button(t("隐藏"), elem_id="lab-manage-hide", interactive=False)
            unhide_btn = gr.Button(t("取消隐藏"), elem_id="lab-manage-unhide", interactive=False)
            confirm = gr.Checkbox(label=t("确认删除（预测和评审一并删除，无法恢复）"), value=False, elem_id="lab-manage-confirm")
            delete_btn = gr.Button(t("删除运行"), variant="stop", elem_id="lab-manage-delete", interactive=False)
        manage_hint = gr.Markdown(hint_static("lab_manage_pick" if all_runs0 else "lab_manage_none"),
                                  elem_id="lab-manage-hint")
        manage_status = gr.Markdown(elem_id="lab-manage-status")

    gr.Markdown("### " + t("结果矩阵"))
    runs_dd = gr.Dropdown(choices=runs0, value=default_runs(state, ls_default),
                          multiselect=True, label=t("显示的运行"), elem_id="lab-runs")
    matrix = gr.HTML(matrix_html(state, ls_default, default_runs(state, ls_default)), elem_id="lab-matrix",
                     js_on_load=MATRIX_JS)

    with gr.Accordion(t("单元格详情"), open=True, elem_id="lab-drill"):
        with gr.Row():
            d_video = gr.Dropdown(choices=video_choices(state, ls_default), label=t("视频"), scale=3,
                                  elem_id="lab-drill-video-id")
            d_run = gr.Dropdown(choices=runs0, label=t("运行 (run)"), scale=3,
                                elem_id="lab-drill-run")
            d_show = gr.Button(t("查看"), scale=0, elem_id="lab-drill-show", interactive=False)
        drill_hint = gr.Markdown(hint_static("lab_drill_pick" if runs0 else "lab_drill_none"), elem_id="lab-drill-hint")
        d_status = gr.Markdown(elem_id="lab-drill-status")
        with gr.Row():
            with gr.Column(scale=2):
                d_player = gr.Video(label=t("播放器"), interactive=False, elem_id="lab-drill-player", autoplay=False)
                d_label = gr.Markdown(elem_id="lab-drill-label")
            with gr.Column(scale=3):
                d_verdict = gr.Markdown(elem_id="lab-drill-verdict")
                d_raw = gr.Textbox(label=t("原始回答"), lines=6, max_lines=20, interactive=False,
                                   elem_id="lab-drill-raw")
        with gr.Row():
            with gr.Column():
                # no default: a preselected "agree" nudges reviewers
                mark = gr.Radio(choices=MARKS, value=None, label=t("评审标记"), elem_id="lab-review-mark")
                comment = gr.Textbox(label=t("评审意见"), lines=2, elem_id="lab-review-comment")
                review_btn = gr.Button(t("保存评审"), elem_id="lab-review-save", interactive=False)
                review_hint = gr.Markdown("", elem_id="lab-review-hint")
                review_status = gr.Markdown(elem_id="lab-review-status")
                reviews_view = gr.Markdown(elem_id="lab-reviews")
            with gr.Column():
                gr.Markdown("**" + t("修正标签（另存为新标签集）") + "** — " + t("修正保存在新标签集 `<原标签集>+fix` 中，原标签集保持不变。"))
                fix_kind = gr.Radio(choices=FIX_CHOICES, value="ghost_probing", label=t("正确的标签"),
                                    elem_id="lab-fix-kind")
                fix_onset = gr.Textbox(label=t("出现时间 (s)"), placeholder=t("留空 = 未知"), elem_id="lab-fix-onset")
                fix_note = gr.Textbox(label=t("备注"), elem_id="lab-fix-note")
                fix_btn = gr.Button(t("保存标签修正"), elem_id="lab-fix-save", interactive=False)
                fix_status = gr.Markdown(elem_id="lab-fix-status")

    with gr.Accordion(t("比较两次运行"), open=False, elem_id="lab-compare-box"):
        with gr.Row():
            cmp_a = gr.Dropdown(choices=runs0, label=t("运行 A"), elem_id="lab-cmp-a")
            cmp_b = gr.Dropdown(choices=runs0, label=t("运行 B"), elem_id="lab-cmp-b")
            cmp_policy = gr.Radio(choices=POLICY_CHOICES, value="counted_wrong", label=t("未解析/出错的处理"),
                                  elem_id="lab-cmp-policy")
            cmp_btn = gr.Button(t("比较"), scale=0, elem_id="lab-cmp-btn", interactive=False)
        cmp_hint = gr.Markdown(hint_static("lab_cmp_pick" if len(runs0) >= 2 else "lab_cmp_few"), elem_id="lab-cmp-hint")
        cmp_out = gr.Markdown(elem_id="lab-compare")

    # -- handlers -----------------------------------------------------------------------------------
    def fail(e: BaseException | str, what: str, lang: str) -> str:
        if isinstance(e, BaseException) and not is_user_error(e):
            log.exception("%s failed", what)
        return msg.error_md(e, lang)

    def on_prompt(ref, request: gr.Request = None):
        lang = msg.lang_of(request)
        if not ref:
            return "", diff_html("", msg.m("lab_pick_prompt", lang), lang), "", "", "", "", ""
        try:
            return (*prompt_view(load_library(state), ref, lang), gr.skip())
        except Exception as e:
            return "", "", "", "", "", "", fail(e, "prompt view", lang)

    def run_lists(ls: str | None, keep: list[str] | None, lang: str, select: str | None = None,
                  picks: tuple | list = ()):
        """Fresh choices for every run picker: shown runs, drill-down, compare, manage, resume. ``picks`` are the
        pickers' values now (drill-down run, A, B, resume, manage): kept while still among the new choices, else
        cleared (a value outside its choices makes Gradio refuse every event that reads it)."""
        d_cur, a_cur, b_cur, res_cur, man_cur = (list(picks) + [None] * 5)[:5]
        rc = run_choices(state, ls, lang)
        ids = [v for _, v in rc]
        sel = [r for r in (keep or []) if r in ids]
        if select and select in ids:
            sel = [select] + [r for r in sel if r != select]
            sel = sel[:max(MATRIX_DEFAULT_RUNS, len(keep or []) + 1)]
        sel = sel or default_runs(state, ls)
        resumable, managed = resumable_choices(state, lang), run_choices(state, lang=lang, include_hidden=True)

        def pick(choices, *vals):
            values = [v for _, v in choices]
            return next((v for v in vals if v and v in values), None)

        return (gr.update(choices=rc, value=sel), matrix_html(state, ls, sel, lang),
                gr.update(choices=rc, value=pick(rc, select, d_cur)), gr.update(choices=rc, value=pick(rc, select, a_cur)),
                gr.update(choices=rc, value=pick(rc, b_cur)), gr.update(choices=managed, value=pick(managed, man_cur)),
                gr.update(choices=resumable, value=pick(resumable, res_cur)))

    def on_refresh(ref, ls, selected, d_cur, a_cur, b_cur, res_cur, man_cur, request: gr.Request = None):
        lang = msg.lang_of(request)
        plib = load_library(state)
        choices = prompt_choices(plib)
        refs = [v for _, v in choices]
        ref = ref if ref in refs else default_prompt(plib)
        problems = "; ".join(plib.problems)
        sets = label_set_choices(state, lang)
        ls = ls if ls in [v for _, v in sets] else default_label_set(state)
        return (gr.update(choices=choices, value=ref), gr.update(choices=sets, value=ls),
                *run_lists(ls, selected, lang, picks=(d_cur, a_cur, b_cur, res_cur, man_cur)),
                msg.status(msg.md("lab_prompt_problems", lang, p=problems), ok=False) if problems else "")

    def on_save(ref, sys_txt, user_txt, fs_txt, notes_txt, request: gr.Request = None):
        lang = msg.lang_of(request)
        try:
            plib = load_library(state)
            base = plib.get(ref)
            new = plib.save_new_version(base, system=sys_txt, user=user_txt, few_shot=fs_txt or "",
                                        notes=notes_txt or "", dir=prompt_save_dir(state))
        except Exception as e:
            return gr.skip(), gr.skip(), gr.skip(), fail(e, "prompt save", lang)
        plib = load_library(state)
        yaml_txt, d, *_ = prompt_view(plib, new.ref, lang)
        text = msg.md("lab_saved", lang, n=new.ref, b=base.ref, h=new.short_hash)
        return gr.update(choices=prompt_choices(plib), value=new.ref), yaml_txt, d, msg.status(text)

    def on_label_set(ls, request: gr.Request = None):
        lang = msg.lang_of(request)
        rc = run_choices(state, ls, lang)
        sel = default_runs(state, ls)
        vids = video_choices(state, ls)
        return (gr.update(choices=vids, value=[]), gr.update(choices=rc, value=sel), matrix_html(state, ls, sel, lang),
                gr.update(choices=vids, value=None), gr.update(choices=rc, value=None), gr.update(choices=rc, value=None),
                gr.update(choices=rc, value=None))

    def on_runs(ls, selected, request: gr.Request = None):
        lang = msg.lang_of(request)
        try:
            return matrix_html(state, ls, selected, lang)
        except Exception as e:
            return f"<p>{html.escape(msg.error_text(e, lang))}</p>"

    def buttons(enabled: bool):
        return (gr.update(interactive=enabled),) * 3

    def lock_ui():
        return buttons(False)

    # -- empty states: each button on only when what it needs is picked; one sentence says what is missing.
    # Each group answers for its own picks (their .change) and all of them after anything that changes the
    # runs (a run ending, a run managed, Refresh, the label set, the page load).
    def _btn(on: bool):
        return gr.update(interactive=bool(on))

    def _row(rid: str | None) -> dict[str, Any] | None:
        if not rid:
            return None
        try:
            return R.get_run(state.store, rid)
        except Exception:  # deleted since it was picked
            return None

    def _run_ids(ls: str | None) -> list[str]:
        return [v for _, v in run_choices(state, ls)] if ls else []

    def run_sync(ref, eng, ls, lang: str):
        """(Run, its sentence): off while a run is going on this server (no sentence: the Run box shows it)."""
        busy = run_lock.locked()
        need = run_need(ref, eng, ls, bool(ls) or bool(lab.list_sets(state.store)))
        return _btn(need is None and not busy), hint_md(None if busy else need, lang)

    def resume_sync(rid, lang: str):
        """(run picker, Resume, Retry errors, sentence): a picked run that is no longer resumable is unpicked."""
        ids = [v for _, v in resumable_choices(state, lang)]
        dd = gr.skip()
        if rid and rid not in ids:  # finished, hidden or deleted since it was picked
            dd, rid = gr.update(value=None), None
        resume, retry = resume_flags(_row(rid))
        busy = run_lock.locked()
        key = None if rid else ("lab_resume_pick" if ids else "lab_resume_none")
        return dd, _btn(resume and not busy), _btn(retry and not busy), hint_md(key, lang)

    def manage_sync(rid, sure, lang: str):
        """(run picker, Rename, Hide, Unhide, Delete, sentence)."""
        row = _row(rid)
        dd = gr.update(value=None) if rid and row is None else gr.skip()
        if row is None:
            key = "lab_manage_pick" if run_choices(state, lang=lang, include_hidden=True) else "lab_manage_none"
        else:
            key = None if sure else "lab_manage_confirm"
        return (dd, *(_btn(f) for f in manage_flags(row, sure)), hint_md(key, lang))

    def drill_sync(ls, video_id, rid, mark_value, lang: str, ids: list[str] | None = None):
        """(run picker, 查看, 保存标签修正, 保存评审, sentence, review sentence): 查看 needs a video and a run,
        the correction a video (and a label set), the review a video, a run and a mark."""
        ids = _run_ids(ls) if ids is None else ids
        dd = gr.skip()
        if rid and rid not in ids:  # hidden, deleted or of another label set
            dd, rid = gr.update(value=None), None
        cell = bool(video_id and rid)
        key = None if cell else ("lab_drill_pick" if ids else "lab_drill_none")
        return (dd, _btn(cell), _btn(video_id and (rid or ls)), _btn(cell and mark_value), hint_md(key, lang),
                hint_md("lab_drill_need_mark" if cell and not mark_value else None, lang))

    def cmp_sync(ls, a, b, lang: str, ids: list[str] | None = None):
        """(run A, run B, 比较, sentence): two different runs of the label set."""
        ids = _run_ids(ls) if ids is None else ids
        ups = []
        for rid in (a, b):
            ups.append(gr.update(value=None) if rid and rid not in ids else gr.skip())
        a, b = (a if a in ids else None), (b if b in ids else None)
        on = bool(a and b and a != b)
        key = "lab_cmp_few" if len(ids) < 2 else (None if on else "lab_cmp_pick")
        return (*ups, _btn(on), hint_md(key, lang))

    def sync_all(ref, eng, ls, resume_rid, manage_rid, sure, video_id, rid, mark_value, a, b,
                 request: gr.Request = None):
        lang = msg.lang_of(request)
        ids = _run_ids(ls)
        return (*run_sync(ref, eng, ls, lang), *resume_sync(resume_rid, lang), *manage_sync(manage_rid, sure, lang),
                *drill_sync(ls, video_id, rid, mark_value, lang, ids), *cmp_sync(ls, a, b, lang, ids))

    def on_run_pick(ref, eng, ls, request: gr.Request = None):
        return run_sync(ref, eng, ls, msg.lang_of(request))

    def on_resume_pick(rid, request: gr.Request = None):
        return resume_sync(rid, msg.lang_of(request))

    def on_manage_pick(rid, sure, request: gr.Request = None):
        return manage_sync(rid, sure, msg.lang_of(request))

    def on_drill_pick(ls, video_id, rid, mark_value, request: gr.Request = None):
        return drill_sync(ls, video_id, rid, mark_value, msg.lang_of(request))

    def on_cmp_pick(ls, a, b, request: gr.Request = None):
        return cmp_sync(ls, a, b, msg.lang_of(request))

    def _evaluate(lang: str, progress, *, start: dict[str, Any] | None = None, resume: str | None = None,
                  retry: bool = False):
        """One evaluation through webapp.evaluation.run_eval, refused while another one runs on this server."""
        from webapp.evaluation import run_eval

        if not run_lock.acquire(blocking=False):
            return msg.status(msg.md("lab_busy", lang, r=active.get("run") or "…"), ok=False), gr.skip()
        cancel = threading.Event()
        active.update(cancel=cancel, run=resume or "…")
        try:
            progress(0, desc=msg.m("lab_preparing", lang))

            def cb(ev: dict[str, Any]) -> None:
                if ev.get("event") == "start":
                    active["run"] = ev["run_id"]
                    progress((ev.get("skipped", 0), ev.get("total")),
                             desc=msg.m("lab_prog_start", lang, r=ev["run_id"], n=ev["total"]), unit=msg.m("lab_unit", lang))
                elif ev.get("event") == "video":
                    progress((ev["index"], ev["total"]), desc=msg.m("lab_prog_video", lang, v=ev["video_id"], s=ev["status"]),
                             unit=msg.m("lab_unit", lang))

            if resume:
                run = run_eval(state.store, resume=resume, retry_errors=retry, progress=cb, cancel=cancel)
            else:
                run = run_eval(state.store, progress=cb, cancel=cancel, **(start or {}))
            row = R.get_run(state.store, str(run))
            text = run_summary_md(run.summary, row.get("label_set"), lang, row)
            ok = run.summary["status"] == "done" and not msg.coverage_counts(row)[2]
            return msg.status(text, ok=ok), str(run)
        except Exception as e:
            return fail(e, "run", lang), gr.skip()
        finally:
            active.update(cancel=None, run=None)
            run_lock.release()

    def on_run(ref, eng, ls, vids, name, request: gr.Request = None, progress=gr.Progress()):
        lang = msg.lang_of(request)
        for ok, key in ((eng, "lab_need_engine"), (ref or not takes_prompt(eng), "lab_need_prompt"), (ls, "lab_need_set")):
            if not ok:
                return msg.status(msg.m(key, lang), ok=False), gr.skip()
        return _evaluate(lang, progress, start=dict(engine_name=eng, label_set=ls, video_ids=list(vids or []) or None,
                                                    prompt_ref=ref if takes_prompt(eng) else None,
                                                    name=(name or "").strip() or None))

    def on_resume_any(rid, retry: bool, lang: str, progress):
        if not rid:
            return msg.status(msg.m("lab_need_resume", lang), ok=False), gr.skip()
        try:
            row = R.get_run(state.store, rid)
        except Exception as e:
            return fail(e, "resume", lang), gr.skip()
        planned, scored, left = msg.coverage_counts(row)
        errs = int(row.get("errors") or 0)
        in_library = (planned or 0) - int(row.get("missing") or 0)
        todo = max(in_library - int(row.get("predictions") or 0), 0) + (errs if retry else 0)
        if not todo and row.get("status") not in ("cancelled", "failed", "running"):
            extra = msg.m("lab_nothing_left_errs", lang, n=errs) if errs and not retry else ""
            return msg.status(msg.md("lab_nothing_left", lang, r=row["run_id"], errs=extra), ok=False), gr.skip()
        return _evaluate(lang, progress, resume=row["run_id"], retry=retry)

    def on_resume(rid, request: gr.Request = None, progress=gr.Progress()):
        return on_resume_any(rid, False, msg.lang_of(request), progress)

    def on_retry(rid, request: gr.Request = None, progress=gr.Progress()):
        return on_resume_any(rid, True, msg.lang_of(request), progress)

    def after_run(ls, selected, rid, d_cur, a_cur, b_cur, res_cur, man_cur, request: gr.Request = None):
        lang = msg.lang_of(request)
        # the buttons: sync_all, chained after this
        return run_lists(ls, selected, lang, select=rid or None, picks=(d_cur, a_cur, b_cur, res_cur, man_cur))

    def on_cancel(request: gr.Request = None):
        lang = msg.lang_of(request)
        ev = active.get("cancel")
        if ev is None:
            return msg.status(msg.m("lab_no_active", lang), ok=False)
        ev.set()
        return msg.status(msg.m("lab_cancelling", lang))

    # run housekeeping
    def manage(action: str, rid, name, sure, ls, selected, picks, lang: str):
        try:
            if not rid:
                return (msg.status(msg.m("lab_need_manage", lang), ok=False), *(gr.skip(),) * 7, gr.skip())
            if action == "rename":
                row = RA.rename(state.store, rid, name or "")
                text = msg.md("lab_renamed", lang, r=row["run_id"], n=row["name"]) if row.get("name") else \
                    msg.md("lab_unnamed", lang, r=row["run_id"])
            elif action in ("hide", "unhide"):
                row = RA.set_hidden(state.store, rid, action == "hide")
                text = msg.md("lab_hidden" if action == "hide" else "lab_unhidden", lang, r=row["run_id"])
            else:
                if not sure:
                    return (msg.status(msg.m("lab_need_confirm", lang), ok=False), *(gr.skip(),) * 7, gr.skip())
                deleted = RA.delete(state.store, rid)
                text = msg.md("lab_deleted", lang, r=deleted)
        except Exception as e:
            return (fail(e, "manage runs", lang), *(gr.skip(),) * 7, gr.skip())
        lists = run_lists(ls, selected, lang, picks=picks)
        keep = None if action == "delete" else rid
        manage_upd = gr.update(choices=run_choices(state, lang=lang, include_hidden=True), value=keep)
        return (msg.status(text), *lists[:5], manage_upd, lists[6], False)

    def on_rename(rid, name, ls, selected, d_cur, a_cur, b_cur, res_cur, man_cur, request: gr.Request = None):
        return manage("rename", rid, name, False, ls, selected, (d_cur, a_cur, b_cur, res_cur, man_cur),
                      msg.lang_of(request))

    def on_hide(rid, ls, selected, d_cur, a_cur, b_cur, res_cur, man_cur, request: gr.Request = None):
        return manage("hide", rid, None, False, ls, selected, (d_cur, a_cur, b_cur, res_cur, man_cur),
                      msg.lang_of(request))

    def on_unhide(rid, ls, selected, d_cur, a_cur, b_cur, res_cur, man_cur, request: gr.Request = None):
        return manage("unhide", rid, None, False, ls, selected, (d_cur, a_cur, b_cur, res_cur, man_cur),
                      msg.lang_of(request))

    def on_delete(rid, sure, ls, selected, d_cur, a_cur, b_cur, res_cur, man_cur, request: gr.Request = None):
        return manage("delete", rid, None, sure, ls, selected, (d_cur, a_cur, b_cur, res_cur, man_cur),
                      msg.lang_of(request))

    def show(video_id, run_id, lang: str = "zh"):
        empty = (None, "", "", "", "")
        if not video_id or not run_id:
            return (*empty, msg.status(msg.m("lab_pick_cell", lang), ok=False))
        try:
            run = R.get_run(state.store, run_id)
            p = find_prediction(state, run["run_id"], video_id)
            lid = library_id(state, video_id)
            player, note = None, ""
            if lid is None:
                note = msg.md("lab_not_in_lib", lang, v=video_id)
            else:
                try:
                    player = str(state.library.playable(lid))
                except Exception as e:
                    note = msg.escape_md(msg.error_text(e, lang))
            raw = (p.get("raw") or msg.m("lab_empty_answer", lang)) if p else ""
            return (player, label_md(state, run.get("label_set"), video_id, lang), verdict_md(p, run, lang), raw,
                    reviews_md(state, run["run_id"], p["video_id"], lang) if p else "",
                    msg.status(note, ok=False) if note else msg.status(msg.escape_md(f"{video_id} · {run['run_id']}")))
        except Exception as e:
            return (*empty, fail(e, "drill-down", lang))

    def on_show(video_id, run_id, request: gr.Request = None):
        return show(video_id, run_id, msg.lang_of(request))

    def on_cell(evt: gr.EventData, request: gr.Request = None):
        data = getattr(evt, "_data", None) or {}
        v, r = data.get("video"), data.get("run")
        if not v or not r:
            return (gr.skip(),) * 9
        return (v, r, *show(v, r, msg.lang_of(request)), None)

    def on_review(video_id, run_id, m, c, request: gr.Request = None):
        lang = msg.lang_of(request)
        try:
            if not video_id or not run_id:
                return msg.status(msg.m("lab_need_video_run", lang), ok=False), gr.skip(), gr.skip(), gr.skip()
            if not m:
                return msg.status(msg.m("lab_need_mark", lang), ok=False), gr.skip(), gr.skip(), gr.skip()
            p = find_prediction(state, run_id, video_id)
            if p is None:
                raise R.RunError(f"Run {run_id} has no prediction for {video_id}.")
            R.add_review(state.store, run_id, p["video_id"], m, (c or "").strip() or None,
                         getattr(request, "username", None))
        except Exception as e:
            return fail(e, "review", lang), gr.skip(), gr.skip(), gr.skip()
        text = msg.md("lab_reviewed", lang, m=MARK_NAMES[msg.norm(lang)].get(m, m), v=p["video_id"], r=run_id)
        return msg.status(text), reviews_md(state, run_id, p["video_id"], lang), "", None

    def on_fix(video_id, run_id, ls, kind, onset, note, request: gr.Request = None):
        lang = msg.lang_of(request)
        try:
            if not video_id:
                return msg.status(msg.m("lab_need_video", lang), ok=False), gr.skip(), gr.skip()
            parent = None
            if run_id:
                parent = R.get_run(state.store, run_id).get("label_set")
            parent = parent or ls
            if not parent:
                return msg.status(msg.m("lab_need_fix_set", lang), ok=False), gr.skip(), gr.skip()
            key = lab.video_key(video_id)
            rows = [r for r in lab.list_labels(state.store, parent) if lab.video_key(r["video_id"]) == key]
            vid = rows[0]["video_id"] if rows else video_id
            onset_s = None
            if str(onset or "").strip():
                try:
                    onset_s = float(str(onset).strip().rstrip("sS"))
                except ValueError:
                    return msg.status(msg.md("lab_bad_onset", lang, v=onset), ok=False), gr.skip(), gr.skip()
            target = lab.save_correction(state.store, parent, vid, kind == "ghost_probing", kind=kind,
                                         onset_s=onset_s, note=(note or "").strip() or None)
        except Exception as e:
            return fail(e, "label correction", lang), gr.skip(), gr.skip()
        text = msg.md("lab_fixed", lang, v=vid, t=target, p=parent)
        return msg.status(text), label_md(state, target, vid, lang), gr.update(choices=label_set_choices(state, lang))

    # cloud evaluation (the same path as `jobs submit-eval`: webapp.commands.cloud.submit_eval)
    def cloud_params(ref, eng, ls, vids, backend, model, compute, sku, count, par, uri, lang: str) -> dict[str, Any]:
        from webapp.cli import CliError

        if backend != "azureml":
            raise CliError(msg.m("lab_cloud_backend", lang))
        if not eng:
            raise CliError(msg.m("lab_need_engine", lang))
        if not ls and not vids:
            raise CliError(msg.m("lab_need_set", lang))
        if takes_prompt(eng) and not ref:
            raise CliError(msg.m("lab_need_prompt", lang))
        nums = {}
        for key, what, v, low in (("instance_count", t("节点数"), count, 1), ("parallel", t("并行节点数（0 = 单个命令任务）"), par, 0)):
            try:
                n = int(v if v not in (None, "") else low)
                if n != float(v if v not in (None, "") else low) or n < low:
                    raise ValueError
            except (TypeError, ValueError):
                raise CliError(msg.m("lab_cloud_bad_number", lang, what=what, v=v)) from None
            nums[key] = n
        return {"engine": eng, "model": (model or "").strip() or None, "label_set": ls or None,
                "subset": list(vids or []) or None, "prompt": ref if takes_prompt(eng) else None,
                "videos": (uri or "").strip() or None, "compute": (compute or "").strip() or None,
                "instance_type": (sku or "").strip() or None, "instance_count": nums["instance_count"],
                "parallel": nums["parallel"] or None}

    def on_cloud_preview(ref, eng, ls, vids, backend, model, compute, sku, count, par, uri, request: gr.Request = None):
        import yaml

        from webapp.commands.cloud import submit_eval

        lang = msg.lang_of(request)
        try:
            params = cloud_params(ref, eng, ls, vids, backend, model, compute, sku, count, par, uri, lang)
            out = submit_eval(state.store, dry_run=True, **params)
        except Exception as e:
            return fail(e, "cloud preview", lang), "", gr.update(interactive=False), None
        s = _cloud_where(out)
        text = msg.status(msg.md("lab_cloud_preview", lang, n=len(out["plan"]["videos"]), nodes=out["nodes"], where=s,
                                 kind=msg.m("lab_cloud_kind_par" if params["parallel"] else "lab_cloud_kind_cmd", lang)))
        if not out["ready"]:  # the spec can be read; submitting needs the workspace (one sentence, nothing stored)
            text += "\n\n" + msg.status(msg.md("lab_cloud_not_ready", lang, why=msg.translate(out["reason"], lang)),
                                         ok=False)
        spec = _cloud_spec_text(out, yaml.safe_dump(out["job"], allow_unicode=True, sort_keys=False))
        return text, spec, gr.update(interactive=bool(out["ready"])), params if out["ready"] else None

    def on_cloud_submit(params, request: gr.Request = None):
        from webapp.commands.cloud import submit_eval

        lang = msg.lang_of(request)
        if not params:
            return msg.status(msg.m("lab_cloud_need_preview", lang), ok=False), gr.skip(), gr.update(interactive=False)
        try:
            out = submit_eval(state.store, **params)
        except Exception as e:
            return fail(e, "cloud submit", lang), gr.skip(), gr.update()
        return (msg.status(msg.md("lab_cloud_submitted", lang, job=out["job_id"], n=out["videos"], run=out["run_id"],
                                  url=out["url"])), out["job_id"], gr.update(interactive=False))

    def on_cloud_changed():
        return gr.update(interactive=False), None

    def on_compare(a, b, policy, ls, request: gr.Request = None):
        lang = msg.lang_of(request)
        try:
            if not a or not b:
                return msg.status(msg.m("lab_need_two", lang), ok=False)
            cov = {}
            for rid in (a, b):
                row = R.get_run(state.store, rid)
                cov[row["run_id"]] = msg.coverage(row, lang)
            return compare_md(M.compare_runs(state.store, a, b, policy=policy, label_set=ls or None), lang, cov)
        except Exception as e:
            return fail(e, "compare", lang)

    # -- API endpoints ------------------------------------------------------------------------------
    def run_eval_api(label_set: str, engine: str = "baseline", prompt: str = "",
                     video_ids: list[str] | None = None) -> str:
        """Run a prompt version (id, id@version or hash prefix; empty = the detect default) with an engine on a
        label set (or a subset of its videos) and return the run id."""
        from webapp.evaluation import run_eval
        from webapp.state import raise_user_error

        if not run_lock.acquire(blocking=False):
            raise gr.Error(msg.m("lab_busy", "en", r=active.get("run") or "…"))
        cancel = threading.Event()
        active.update(cancel=cancel, run="…")
        try:
            return str(run_eval(state.store, engine_name=engine, label_set=label_set or None,
                                video_ids=list(video_ids or []) or None, prompt_ref=prompt or None, cancel=cancel))
        except Exception as e:
            raise_user_error(e, log, "run_eval_api")
            raise
        finally:
            active.update(cancel=None, run=None)
            run_lock.release()

    def prompt_versions() -> list[dict]:
        """Every detect prompt version: ref, title, parent, sha256."""
        return [{"ref": p.ref, "title": p.title, "parent": p.parent, "hash": p.hash,
                 "source": str(p.source) if p.source else None}
                for p in load_library(state).all() if p.kind == "detect"]

    def save_prompt_version(base: str, system: str, user: str, few_shot: str = "", notes: str = "") -> str:
        """Save a new version derived from `base` (id@version) and return its ref."""
        plib = load_library(state)
        return plib.save_new_version(plib.get(base), system=system, user=user, few_shot=few_shot, notes=notes,
                                     dir=prompt_save_dir(state)).ref

    def lab_matrix(label_set: str, run_ids: list[str]) -> list[dict]:
        """The matrix as rows: video_id, label, and per run the cell class (right/wrong/unparsed/error/missing)."""
        labels = lab.list_labels(state.store, label_set)
        runs = [{"run_id": rid} for rid in run_ids]
        preds = {rid: R.predictions(state.store, rid) for rid in run_ids}
        return MX.as_records(MX.build(labels, runs, preds, key=lab.video_key), lab.label_badge)

    gr.api(run_eval_api, api_name="run_eval_api")
    gr.api(prompt_versions, api_name="prompt_versions")
    gr.api(save_prompt_version, api_name="save_prompt_version")
    gr.api(lab_matrix, api_name="lab_matrix")

    # -- wiring -------------------------------------------------------------------------------------
    view_outs = [yaml_view, diff_view, system, user, few_shot, notes, save_status]
    list_outs = [runs_dd, matrix, d_run, cmp_a, cmp_b, manage_dd, resume_dd]
    # the empty states (see sync_all): what each group reads and the buttons and sentences it sets
    run_g = ([prompt_dd, engine, label_set], [run_btn, run_hint])
    resume_g = ([resume_dd], [resume_dd, resume_btn, retry_btn, resume_hint])
    manage_g = ([manage_dd, confirm], [manage_dd, rename_btn, hide_btn, unhide_btn, delete_btn, manage_hint])
    drill_g = ([label_set, d_video, d_run, mark], [d_run, d_show, fix_btn, review_btn, drill_hint, review_hint])
    cmp_g = ([label_set, cmp_a, cmp_b], [cmp_a, cmp_b, cmp_btn, cmp_hint])
    sync_in = [prompt_dd, engine, label_set, resume_dd, manage_dd, confirm, d_video, d_run, mark, cmp_a, cmp_b]
    sync_out = [*run_g[1], *resume_g[1], *manage_g[1], *drill_g[1], *cmp_g[1]]
    # A user's pick answers at once (.input); a pick made by a handler (a cell click, a run ending, Refresh...)
    # is followed by sync_all chained after that handler: a .change fired amid a handler's updates could read a
    # neighbour picker's old value outside its new choices, which Gradio refuses with an error.
    for fn, (ins, outs), comps in ((on_run_pick, run_g, [prompt_dd, engine]), (on_resume_pick, resume_g, [resume_dd]),
                                   (on_manage_pick, manage_g, [manage_dd, confirm]),
                                   (on_drill_pick, drill_g, [d_video, d_run, mark]), (on_cmp_pick, cmp_g, [cmp_a, cmp_b])):
        for comp in comps:
            comp.input(fn, ins, outs, show_progress="hidden")

    def synced(dep):
        """Chain the empty states after an event that changes the runs or the label set."""
        return dep.then(sync_all, sync_in, sync_out, show_progress="hidden")

    prompt_dd.change(on_prompt, [prompt_dd], view_outs)
    picks = [d_run, cmp_a, cmp_b, resume_dd, manage_dd]  # run_lists keeps these while still valid
    # no progress overlay on the runs and the matrix anywhere (progress belongs in the Run box; these are quick)
    synced(refresh.click(on_refresh, [prompt_dd, label_set, runs_dd, *picks],
                         [prompt_dd, label_set, *list_outs, save_status], show_progress="hidden"))
    synced(save.click(on_save, [prompt_dd, system, user, few_shot, notes], [prompt_dd, yaml_view, diff_view, save_status]))
    # no progress overlay on the runs and the matrix (progress belongs in the Run box; this one is quick)
    synced(label_set.change(on_label_set, [label_set], [videos, runs_dd, matrix, d_video, d_run, cmp_a, cmp_b],
                            show_progress="hidden"))
    runs_dd.change(on_runs, [label_set, runs_dd], [matrix], show_progress="hidden")
    run_buttons = [run_btn, resume_btn, retry_btn]
    # The buttons go grey in the browser at once (js) and on the server's answer; the server also refuses a
    # second run while one is going (run_lock), whichever browser asks. Progress is drawn in the Run box only.
    for btn, fn, inputs in ((run_btn, on_run, [prompt_dd, engine, label_set, videos, run_name]),
                            (resume_btn, on_resume, [resume_dd]), (retry_btn, on_retry, [resume_dd])):
        synced(btn.click(lock_ui, None, run_buttons, js=RUN_BTN_JS, queue=False, trigger_mode="once").then(
            fn, inputs, [run_status, last_run], show_progress_on=[run_status]).then(
            after_run, [label_set, runs_dd, last_run, *picks], list_outs, show_progress="hidden"))
    cancel_btn.click(on_cancel, None, [run_status], queue=False)
    manage_outs = [manage_status, runs_dd, matrix, d_run, cmp_a, cmp_b, manage_dd, resume_dd, confirm]
    quiet = {"show_progress_on": [manage_status]}
    synced(rename_btn.click(on_rename, [manage_dd, new_name, label_set, runs_dd, *picks], manage_outs, **quiet))
    synced(hide_btn.click(on_hide, [manage_dd, label_set, runs_dd, *picks], manage_outs, **quiet))
    synced(unhide_btn.click(on_unhide, [manage_dd, label_set, runs_dd, *picks], manage_outs, **quiet))
    synced(delete_btn.click(on_delete, [manage_dd, confirm, label_set, runs_dd, *picks], manage_outs, **quiet))
    drill_outs = [d_player, d_label, d_verdict, d_raw, reviews_view, d_status]
    d_show.click(on_show, [d_video, d_run], drill_outs)
    synced(matrix.click(on_cell, None, [d_video, d_run, *drill_outs, mark]))
    synced(review_btn.click(on_review, [d_video, d_run, mark, comment], [review_status, reviews_view, comment, mark]))
    fix_btn.click(on_fix, [d_video, d_run, label_set, fix_kind, fix_onset, fix_note], [fix_status, d_label, label_set])
    cmp_btn.click(on_compare, [cmp_a, cmp_b, cmp_policy, label_set], [cmp_out])

    c_inputs = [prompt_dd, engine, label_set, videos, c_backend, c_model, c_compute, c_sku, c_count, c_parallel, c_videos]
    c_preview.click(on_cloud_preview, c_inputs, [c_status, c_spec, c_submit, c_params])
    c_submit.click(on_cloud_submit, [c_params], [c_status, cloud_job, c_submit])
    for comp in c_inputs:  # a changed choice needs a new preview: what is submitted is what was shown
        comp.change(on_cloud_changed, None, [c_submit, c_params], show_progress="hidden")

    def on_page_load(ref, ls, request: gr.Request = None):
        """A fresh page shows what the store holds now (runs made elsewhere, new label sets, new versions), in the
        browser's language, with the label set used last and the Run button off while a run is going."""
        lang = msg.lang_of(request)
        plib = load_library(state)
        choices = prompt_choices(plib)
        refs = [v for _, v in choices]
        ref = ref if ref in refs else default_prompt(plib)
        sets = label_set_choices(state, lang)
        ls = default_label_set(state)
        vids = video_choices(state, ls)
        try:
            view = prompt_view(plib, ref, lang) if ref else ("", "", "", "", "", "")
        except Exception as e:
            view = ("", "", "", "", "", "")
            log.warning("prompt view failed: %s", e)
        ec, ev = engine_choices(state.config.default_engine or "baseline", lang)
        busy = run_lock.locked()
        # Resume / Retry wait for a pick; the rest of the empty states follow in sync_all (chained)
        return (gr.update(choices=choices, value=ref), *view, gr.update(choices=sets, value=ls),
                gr.update(choices=vids), *run_lists(ls, None, lang), gr.update(choices=vids),
                gr.update(choices=ec, value=ev),
                _btn(not busy and run_need(ref, ev, ls, bool(sets)) is None), _btn(False), _btn(False),
                f"<small>{msg.md('lab_save_where', lang, d=prompt_save_dir(state))}</small>")

    loaded = on_load(on_page_load, [prompt_dd, label_set],
                     [prompt_dd, yaml_view, diff_view, system, user, few_shot, notes, label_set, videos, *list_outs,
                      d_video, engine, *run_buttons, save_where])
    if loaded is not None:
        synced(loaded)
    return {"prompt": prompt_dd, "label_set": label_set, "runs": runs_dd, "matrix": matrix, "last_run": last_run,
            "cloud_job": cloud_job}


def on_load(fn, inputs, outputs):
    """Register ``fn`` on the page load of the Blocks being built (tabs do not get the Blocks object); the
    event's dependency (for ``.then``), None outside a Blocks."""
    from gradio.context import Context

    root = Context.root_block
    if root is not None:
        return root.load(fn, inputs, outputs, show_progress="hidden")
    return None
