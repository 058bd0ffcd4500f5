"""Run housekeeping: ``ghostprobe runs rename|hide|unhide|delete RUN``, and ``report --lang zh|en``.

The operations themselves are ``reports.runs.rename_run / set_run_hidden / delete_run``; the helpers
below are what the CLI and the Prompt Lab / Reports tabs call, so both say the same sentences.
This module adds its sub-commands to the ``runs`` group and its flag to ``report`` that
``webapp.commands.evaluation`` registered (it must be registered after it).
"""

from __future__ import annotations

import argparse

from webapp.cli import CliError, print_json


# -- the operations (shared with the UI) -----------------------------------------------------------
def _runs():
    from reports import runs as R

    return R


def rename(store, run: str, name: str) -> dict:
    """Give a run a (new) unique name; an empty name clears it. Returns the run row."""
    R = _runs()
    row = R.get_run(store, run)
    name = (name or "").strip()
    if hasattr(R, "rename_run"):
        R.rename_run(store, row["run_id"], name)
    else:  # until reports.runs.rename_run lands: the same rule create_run applies to names
        if name:
            clash = store.query("SELECT run_id FROM runs WHERE (name = ? OR run_id = ?) AND run_id <> ?",
                                [name, name, row["run_id"]])
            if clash:
                raise R.RunError(f"A run named '{name}' already exists ({clash[0]['run_id']}); choose another name.")
        R.update_run(store, row["run_id"], name=name or None)
    return R.get_run(store, row["run_id"])


def set_hidden(store, run: str, hidden: bool) -> dict:
    R = _runs()
    row = R.get_run(store, run)
    if not hasattr(R, "set_run_hidden"):
        raise R.RunError("Hiding runs needs reports.runs.set_run_hidden, which this version does not have yet.")
    R.set_run_hidden(store, row["run_id"], bool(hidden))
    return R.get_run(store, row["run_id"])


def delete(store, run: str) -> str:
    R = _runs()
    row = R.get_run(store, run)
    if row.get("status") == "running":
        raise R.RunError(f"Run {row['run_id']} is still running; cancel it before deleting it.")
    if not hasattr(R, "delete_run"):
        raise R.RunError("Deleting runs needs reports.runs.delete_run, which this version does not have yet.")
    R.delete_run(store, row["run_id"])
    return row["run_id"]


def list_runs(store, **kw) -> list[dict]:
    """reports.runs.list_runs with hidden runs left out where the store knows about hiding."""
    R = _runs()
    try:
        return R.list_runs(store, include_hidden=kw.pop("include_hidden", False), **kw)
    except TypeError:  # before include_hidden exists, nothing is hidden
        kw.pop("include_hidden", None)
        return R.list_runs(store, **kw)


def admin_available() -> dict[str, bool]:
    R = _runs()
    return {"rename": True, "hide": hasattr(R, "set_run_hidden"), "delete": hasattr(R, "delete_run")}


# -- CLI -------------------------------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    for a in parser._actions:  # argparse keeps no public handle on a parser's sub-commands
        if isinstance(a, argparse._SubParsersAction):
            return a
    raise RuntimeError("the runs command has no sub-commands")


def register(sub: argparse._SubParsersAction) -> None:
    runs = sub.choices.get("runs")
    if runs is None:
        raise RuntimeError("webapp.commands.runs_admin must be registered after webapp.commands.evaluation")
    acts = _subparsers(runs)
    p = acts.add_parser("rename", help="give a run a new unique name (RUN = id or name)")
    p.add_argument("run")
    p.add_argument("name", help="the new name ('' clears it)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rename)
    for verb, hidden in (("hide", True), ("unhide", False)):
        p = acts.add_parser(verb, help=("hide a run from lists, charts and reports (nothing is deleted)" if hidden
                                        else "show a hidden run again"))
        p.add_argument("run")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_hide, hidden=hidden)
    p = acts.add_parser("delete", help="delete a run with its predictions and reviews (asks for --yes)")
    p.add_argument("run")
    p.add_argument("--yes", action="store_true", help="really delete it")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_delete)

    report = sub.choices.get("report")
    if report is not None:
        report.add_argument("--lang", choices=["zh", "en"], default="zh",
                            help="language of the HTML report and the summary (default zh)")


def cmd_rename(args, ctx) -> int:
    row = rename(ctx.store, args.run, args.name)
    if args.json:
        print_json({"run_id": row["run_id"], "name": row.get("name")})
    else:
        print(f"{row['run_id']} is now named {row.get('name')!r}." if row.get("name") else
              f"{row['run_id']} has no name now.")
    return 0


def cmd_hide(args, ctx) -> int:
    row = set_hidden(ctx.store, args.run, args.hidden)
    if args.json:
        print_json({"run_id": row["run_id"], "hidden": bool(row.get("hidden", args.hidden))})
    else:
        print(f"{row['run_id']} is {'hidden' if args.hidden else 'shown again'}.")
    return 0


def cmd_delete(args, ctx) -> int:
    R = _runs()
    row = R.get_run(ctx.store, args.run)
    if not args.yes:
        raise CliError(f"Deleting {row['run_id']} removes its predictions and reviews for good; add --yes to do it.")
    rid = delete(ctx.store, row["run_id"])
    if args.json:
        print_json({"run_id": rid, "deleted": True})
    else:
        print(f"deleted {rid}.")
    return 0
