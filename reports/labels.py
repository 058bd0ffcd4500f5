"""Label sets: named mappings video → {ghost_probing, kind, onset_s, note, source}.

Sources:
- CSV in the DADA-200 style: ``video_id,ground_truth_label[,note]`` where the label is ``none``,
  ``<t>s: ghost probing`` or ``<t>s: cut-in`` (a cut-in is *not* ghost probing).
- CSV in a generic style: ``video_id,ghost_probing,onset_s[,note]`` with 1/0, true/false, yes/no, 是/否.
- Category presets over DADA file names ``images_<category>_<clip>`` (weak labels).
- Corrections made in the UI, saved as a new set whose parent stays untouched.

A file with any bad row is rejected whole, naming each bad row: nothing is half-imported.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.errors import GhostProbeError, InputError, input_file
from reports.store import Store


class LabelError(GhostProbeError):
    """A label file or label-set request that cannot be honoured (one sentence)."""


KINDS = ("ghost_probing", "cut_in", "none")

# Category presets that label by DADA file name. Category alone is a weak label: the UI says so.
PRESETS: dict[str, dict[str, Any]] = {
    "seed": {
        "categories": (10, 11, 28, 29, 34, 38, 39),
        "description": "The category set the seed project quoted for ghost probing (10, 11, 28, 29, 34, 38, 39); "
                       "it does not match DADA's own taxonomy. Weak labels.",
    },
    "dada-crossing": {
        "categories": (1, 3, 5, 7, 10),
        "description": "DADA's 'crossing' categories (pedestrian, cyclist, motorbike, truck, car: 1, 3, 5, 7, 10). "
                       "Weak labels: a crossing is not always ghost probing.",
    },
}
DADA_NAME = re.compile(r"^images_(\d+)_(\d+)(?:\.[A-Za-z0-9]+)?$")

_DADA_LABEL = re.compile(
    r"^\s*(?:(?P<t>\d+(?:\.\d+)?)\s*s?\s*[:：]\s*)?(?P<kind>ghost[\s_-]*probing|cut[\s_-]*in)\s*$", re.IGNORECASE)
_TRUE = {"1", "true", "yes", "y", "是", "有", "t"}
_FALSE = {"0", "false", "no", "n", "否", "无", "f"}


@dataclass
class LabelRow:
    video_id: str
    ghost_probing: bool
    kind: str
    onset_s: float | None
    note: str | None


def video_key(video_id: str) -> str:
    """How label ids meet library ids: the file name without folder or extension, lower-cased."""
    name = video_id.strip().replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"\.[A-Za-z0-9]{2,4}$", "", name).lower()


# -- parsing --------------------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    try:  # refuses a FIFO (which would block forever), a device, a folder and a symlink loop before opening
        input_file(path, "label file")
    except InputError as e:
        raise LabelError(str(e)) from None
    try:
        data = path.read_bytes()
    except OSError as e:
        from engines.errors import format_error

        raise LabelError(format_error(e)) from None
    if not data.strip():
        raise LabelError(f"Label file {path.name} is empty.")
    nul = data.find(b"\x00")
    if nul >= 0:  # anywhere: a NUL byte would end up inside a stored video id or note
        raise LabelError(f"{path.name} is not a text CSV file (it holds a NUL byte at byte {nul}).")
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise LabelError(f"{path.name} is not UTF-8 or GB18030 text.")


def _parse_dada_label(value: str) -> tuple[bool, str, float | None]:
    v = value.strip()
    if v.lower() in {"none", "no", "normal", "无", ""}:
        if v == "":
            raise ValueError("the label is empty")
        return False, "none", None
    m = _DADA_LABEL.match(v)
    if not m:
        raise ValueError(f"label '{v}' is not none, '<t>s: ghost probing' or '<t>s: cut-in'")
    t = float(m["t"]) if m["t"] is not None else None
    if m["kind"].lower().startswith("ghost"):
        return True, "ghost_probing", t
    return False, "cut_in", t


def _parse_bool(value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"ghost_probing '{value.strip()}' is not 1/0, true/false, yes/no or 是/否")


def _parse_onset(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    v = value.strip().lower().removesuffix("s").removesuffix("秒").strip()
    t = float(v)  # ValueError reported by caller
    if t < 0 or t != t:
        raise ValueError("onset_s must be a non-negative number of seconds")
    return t


def parse_label_csv(path: str | Path, fmt: str = "auto") -> tuple[str, list[LabelRow]]:
    """Parse and validate a label CSV; returns (format used, rows). Raises LabelError naming every bad row."""
    path = Path(path)
    if fmt not in ("auto", "dada", "generic"):
        raise LabelError(f"Unknown label format '{fmt}'; use auto, dada or generic.")
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text))
    try:
        rows = [r for r in reader]
    except csv.Error as e:
        raise LabelError(f"{path.name} is not valid CSV ({e}).") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise LabelError(f"Label file {path.name} is empty.")
    header = [h.strip().lower() for h in rows[0]]
    if "video_id" not in header:
        raise LabelError(f"{path.name} has no video_id column; expected a header such as "
                         "video_id,ground_truth_label,note or video_id,ghost_probing,onset_s.")
    if fmt == "auto":
        if "ground_truth_label" in header:
            fmt = "dada"
        elif "ghost_probing" in header:
            fmt = "generic"
        else:
            raise LabelError(f"{path.name} has neither a ground_truth_label nor a ghost_probing column.")
    need = "ground_truth_label" if fmt == "dada" else "ghost_probing"
    if need not in header:
        raise LabelError(f"{path.name} has no {need} column, which the {fmt} format needs.")
    col = {name: header.index(name) for name in header}
    out: list[LabelRow] = []
    bad: list[str] = []
    seen: dict[str, int] = {}
    # Row numbers are file lines as a spreadsheet counts them (header = 1); blank lines are skipped.
    for n, r in enumerate(rows[1:], start=2):
        def cell(name: str) -> str | None:
            i = col.get(name)
            return r[i] if i is not None and i < len(r) else None

        vid = (cell("video_id") or "").strip()
        note = (cell("note") or "").strip() or None
        try:
            if not vid:
                raise ValueError("video_id is empty")
            if video_key(vid) in seen:
                raise ValueError(f"video {vid} is listed twice (also row {seen[video_key(vid)]})")
            if fmt == "dada":
                gp, kind, onset = _parse_dada_label(cell("ground_truth_label") or "")
            else:
                gp = _parse_bool(cell("ghost_probing") or "")
                try:
                    onset = _parse_onset(cell("onset_s"))
                except ValueError:
                    raise ValueError(f"onset_s '{(cell('onset_s') or '').strip()}' is not a number of seconds") from None
                kind_cell = (cell("kind") or "").strip().lower().replace("-", "_").replace(" ", "_")
                kind = kind_cell if kind_cell in KINDS else ("ghost_probing" if gp else "none")
                if gp and kind != "ghost_probing":
                    raise ValueError(f"kind '{kind}' contradicts ghost_probing=1")
            seen[video_key(vid)] = n
            out.append(LabelRow(vid, gp, kind, onset, note))
        except ValueError as e:
            bad.append(f"row {n}: {e}")
    if bad:
        shown = "; ".join(bad[:10]) + (f"; and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise LabelError(f"{path.name} has {len(bad)} bad row{'s' if len(bad) > 1 else ''}, so nothing was imported: {shown}.")
    if not out:
        raise LabelError(f"{path.name} has a header but no label rows.")
    return fmt, out


# -- store ----------------------------------------------------------------------------------------
_SET_NAME = re.compile(r"^[\w\-.@+\u4e00-\u9fff]{1,64}$")


def _check_set_name(name: str) -> str:
    name = (name or "").strip()
    if not _SET_NAME.match(name):
        raise LabelError("A label set name needs 1–64 letters, digits, Chinese characters or - _ . @ +.")
    return name


def _write_set(store: Store, name: str, source: str, weak: bool, description: str | None,
               rows: list[LabelRow], replace: bool, row_source: str) -> int:
    with store.write() as cur:
        exists = cur.execute("SELECT count(*) FROM label_sets WHERE name = ?", [name]).fetchone()[0]
        if exists and not replace:
            raise LabelError(f"Label set '{name}' already exists; choose another name or replace it explicitly.")
        cur.execute("DELETE FROM labels WHERE label_set = ?", [name])
        cur.execute("DELETE FROM label_sets WHERE name = ?", [name])
        cur.execute("INSERT INTO label_sets (name, source, weak, description) VALUES (?, ?, ?, ?)",
                    [name, source, weak, description])
        cur.executemany(
            "INSERT INTO labels (label_set, video_id, ghost_probing, kind, onset_s, note, source) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [[name, r.video_id, r.ghost_probing, r.kind, r.onset_s, r.note, row_source] for r in rows])
    return len(rows)


def import_label_csv(store: Store, path: str | Path, set_name: str, fmt: str = "auto",
                     replace: bool = False) -> dict[str, Any]:
    """Validate the whole file, then write it in one transaction. Returns a summary."""
    name = _check_set_name(set_name)
    used, rows = parse_label_csv(path, fmt)
    n = _write_set(store, name, f"csv:{Path(path).name}", False, None, rows, replace, f"csv:{Path(path).name}")
    return summarize(name, rows, used)


def apply_preset(store: Store, preset: str, set_name: str, replace: bool = False,
                 video_ids: list[str] | None = None) -> dict[str, Any]:
    """Label every DADA-named video in the library by its category (weak labels)."""
    if preset not in PRESETS:
        raise LabelError(f"Unknown preset '{preset}'; known presets: {', '.join(PRESETS)}.")
    name = _check_set_name(set_name)
    cats = set(PRESETS[preset]["categories"])
    ids = video_ids if video_ids is not None else [r["video_id"] for r in store.query("SELECT video_id FROM videos ORDER BY video_id")]
    rows = []
    for vid in ids:
        m = DADA_NAME.match(Path(vid).name)
        if not m:
            continue
        positive = int(m.group(1)) in cats
        rows.append(LabelRow(vid, positive, "ghost_probing" if positive else "none", None,
                             f"weak: DADA category {int(m.group(1))}"))
    if not rows:
        raise LabelError("No video in the library has a DADA file name (images_<category>_<clip>), so the preset labels nothing.")
    _write_set(store, name, f"preset:{preset}", True, PRESETS[preset]["description"], rows, replace, f"preset:{preset}")
    return summarize(name, rows, f"preset:{preset}")


def save_correction(store: Store, parent_set: str, video_id: str, ghost_probing: bool, kind: str | None = None,
                    onset_s: float | None = None, note: str | None = None, set_name: str | None = None) -> str:
    """Record a label correction in a new label set '<parent>+fix' (created as a copy on first use).

    The original set is never modified; the correction's source says where it came from.
    """
    if not list_sets(store, parent_set):
        raise LabelError(f"Label set '{parent_set}' does not exist.")
    target = _check_set_name(set_name or f"{parent_set}+fix")
    kind = kind or ("ghost_probing" if ghost_probing else "none")
    if kind not in KINDS:
        raise LabelError(f"Kind must be one of {', '.join(KINDS)}.")
    with store.write() as cur:
        if not cur.execute("SELECT count(*) FROM label_sets WHERE name = ?", [target]).fetchone()[0]:
            cur.execute("INSERT INTO label_sets (name, source, weak, description) SELECT ?, ?, weak, ? FROM label_sets WHERE name = ?",
                        [target, f"correction:{parent_set}", f"Corrections of '{parent_set}' made in the UI.", parent_set])
            cur.execute("INSERT INTO labels SELECT ?, video_id, ghost_probing, kind, onset_s, note, source FROM labels WHERE label_set = ?",
                        [target, parent_set])
        cur.execute("DELETE FROM labels WHERE label_set = ? AND video_id = ?", [target, video_id])
        cur.execute("INSERT INTO labels VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [target, video_id, ghost_probing, kind, onset_s, note, "correction"])
    return target


def summarize(name: str, rows: list[LabelRow], fmt: str) -> dict[str, Any]:
    return {
        "label_set": name,
        "format": fmt,
        "videos": len(rows),
        "ghost_probing": sum(r.ghost_probing for r in rows),
        "cut_in": sum(r.kind == "cut_in" for r in rows),
        "none": sum(r.kind == "none" for r in rows),
        "with_onset": sum(r.onset_s is not None for r in rows),
    }


def list_sets(store: Store, name: str | None = None) -> list[dict[str, Any]]:
    sql = """SELECT s.name, s.source, s.weak, s.description, s.created_at,
                    count(l.video_id) AS videos, count(*) FILTER (WHERE l.ghost_probing) AS ghost_probing
             FROM label_sets s LEFT JOIN labels l ON l.label_set = s.name
             {where} GROUP BY ALL ORDER BY s.created_at, s.name"""
    if name:
        return store.query(sql.format(where="WHERE s.name = ?"), [name])
    return store.query(sql.format(where=""))


def list_labels(store: Store, set_name: str | None = None) -> list[dict[str, Any]]:
    """Labels in the stable JSON shape of ``labels list --json``."""
    if set_name and not list_sets(store, set_name):
        raise LabelError(f"Label set '{set_name}' does not exist.")
    sql = """SELECT l.video_id, l.label_set, l.ghost_probing, l.kind, l.onset_s, l.note, l.source, s.weak
             FROM labels l JOIN label_sets s ON s.name = l.label_set {where} ORDER BY l.label_set, l.video_id"""
    if set_name:
        return store.query(sql.format(where="WHERE l.label_set = ?"), [set_name])
    return store.query(sql.format(where=""))


def labels_for_video(store: Store, video_id: str) -> list[dict[str, Any]]:
    key = video_key(video_id)
    return [r for r in list_labels(store) if video_key(r["video_id"]) == key]


def label_badge(row: dict[str, Any] | None) -> str:
    """A short Chinese badge for a label row (used in the library grid)."""
    if not row:
        return "未标注"
    weak = "（弱）" if row.get("weak") else ""
    if row["kind"] == "ghost_probing":
        t = f" {row['onset_s']:g}s" if row.get("onset_s") is not None else ""
        return f"鬼探头{t}{weak}"
    if row["kind"] == "cut_in":
        t = f" {row['onset_s']:g}s" if row.get("onset_s") is not None else ""
        return f"加塞(非鬼探头){t}{weak}"
    return f"无鬼探头{weak}"
