"""Import another system's per-video answers as a run, to score and compare against ours.

Input: CSV (header row), JSONL (one object per line) or JSON (a list of objects, or the first list
of objects found inside an object, searched breadth-first). ``video_field`` and ``answer_field``
name the columns/keys; a dotted name such as ``result.answer`` reaches into nested objects.

Answers are read with two regular expressions, matched case-insensitively anywhere in the text:
an answer matching ``negative`` is a "no" even when it matches ``positive`` too ("no ghost
probing" contains "ghost probing"); one matching only ``positive`` is a "yes"; one matching
neither — or an empty/missing answer — is *unparsed* (status "unparsed", ghost_probing NULL),
never a "no".

Video ids are normalised by the rule of :func:`reports.labels.video_key`: the file name without
folder or extension, lower-cased. ``images_1_024``, ``clips/images_1_024.avi`` and
``IMAGES_1_024.AVI`` all meet the label set's ``images_1_024.avi``, and the prediction is stored
under the label set's spelling. Ids with no label keep their own spelling and count as unlabelled.

Everything is checked before anything is written; a bad file imports nothing.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import deque
from pathlib import Path
from typing import Any

from engines.errors import InputError, format_error, input_file
from engines.types import Verdict
from reports.runs import (RunError, add_predictions, create_run, delete_predictions, label_id_map, require_label_set, video_key)
from reports.store import Store


class PredictionsImportError(RunError):
    """A predictions file that cannot be imported (one sentence)."""


def _read_text(path: Path) -> str:
    try:  # refuses a FIFO (which would block forever), a device, a folder and a symlink loop before opening
        input_file(path, "predictions file")
    except InputError as e:
        raise PredictionsImportError(str(e)) from None
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PredictionsImportError(format_error(e)) from None
    if not data.strip():
        raise PredictionsImportError(f"Predictions file {path.name} is empty.")
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise PredictionsImportError(f"{path.name} is not UTF-8 or GB18030 text.")


def _first_object_list(doc: Any) -> list[dict[str, Any]] | None:
    """The document itself if it is a list of objects, else the first such list breadth-first."""
    queue: deque[Any] = deque([doc])
    while queue:
        node = queue.popleft()
        if isinstance(node, list):
            if node and all(isinstance(x, dict) for x in node):
                return node
            queue.extend(x for x in node if isinstance(x, (dict, list)))
        elif isinstance(node, dict):
            queue.extend(v for v in node.values() if isinstance(v, (dict, list)))
    return None


def read_records(path: str | Path) -> tuple[str, list[dict[str, Any]]]:
    """(format, records) from a CSV, JSONL or JSON file; PredictionsImportError with one sentence otherwise."""
    path = Path(path)
    text = _read_text(path)
    ext = path.suffix.lower()
    stripped = text.lstrip()
    if ext in (".jsonl", ".ndjson") or (ext not in (".json", ".csv") and stripped.startswith("{")
                                        and "\n{" in stripped):
        fmt, records = "jsonl", []
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise PredictionsImportError(f"{path.name} line {i} is not valid JSON ({e.msg}).") from None
            except RecursionError:
                raise PredictionsImportError(f"{path.name} line {i} is nested too deeply to read as JSON.") from None
            if not isinstance(obj, dict):
                raise PredictionsImportError(f"{path.name} line {i} is not a JSON object.")
            records.append(obj)
    elif ext == ".json" or (ext != ".csv" and stripped[:1] in "[{"):
        fmt = "json"
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise PredictionsImportError(f"{path.name} is not valid JSON ({e.msg} at line {getattr(e, 'lineno', '?')}).") from None
        except RecursionError:
            raise PredictionsImportError(f"{path.name} is nested too deeply to read as JSON.") from None
        found = _first_object_list(doc)
        if found is None:
            raise PredictionsImportError(f"{path.name} holds no list of objects to read predictions from.")
        records = found
    else:
        fmt = "csv"
        try:
            records = [dict(r) for r in csv.DictReader(io.StringIO(text))]
        except csv.Error as e:
            raise PredictionsImportError(f"{path.name} is not valid CSV ({e}).") from None
        records = [{(k or "").strip(): v for k, v in r.items()} for r in records
                   if any((v or "").strip() for v in r.values() if isinstance(v, str))]
    if not records:
        raise PredictionsImportError(f"{path.name} has no prediction rows.")
    return fmt, records


def _get(rec: dict[str, Any], field: str) -> tuple[bool, Any]:
    if field in rec:
        return True, rec[field]
    cur: Any = rec
    for part in field.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return False, None
    return True, cur


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def classify(answer: str, positive: re.Pattern[str], negative: re.Pattern[str] | None) -> bool | None:
    """True / False / None (unparsed) by the two patterns; negative wins."""
    if not answer.strip():
        return None
    if negative is not None and negative.search(answer):
        return False
    if positive.search(answer):
        return True
    return None


def _compile(name: str, pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    if not pattern.strip():
        raise PredictionsImportError(f"The {name} pattern is empty.")
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as e:
        raise PredictionsImportError(f"The {name} pattern '{pattern}' is not a valid regular expression ({e}).") from None


def import_predictions(store: Store, path: str | Path, *, name: str, label_set: str, video_field: str,
                       answer_field: str, positive: str, negative: str | None = None,
                       confidence_field: str | None = None, model: str | None = None) -> dict[str, Any]:
    """Create a run (engine "external", status "imported") from a file. Returns a summary."""
    path = Path(path)
    if not (name or "").strip():
        raise PredictionsImportError("An imported run needs a --name.")
    require_label_set(store, label_set)
    pos, neg = _compile("positive", positive), _compile("negative", negative)
    fmt, records = read_records(path)
    has_video = sum(1 for r in records if _get(r, video_field)[0])
    has_answer = sum(1 for r in records if _get(r, answer_field)[0])
    if not has_video:
        keys = sorted({k for r in records[:50] for k in r})[:12]
        raise PredictionsImportError(f"No row of {path.name} has the video field '{video_field}'; fields seen: {', '.join(keys)}.")
    if not has_answer:
        keys = sorted({k for r in records[:50] for k in r})[:12]
        raise PredictionsImportError(f"No row of {path.name} has the answer field '{answer_field}'; fields seen: {', '.join(keys)}.")
    id_map = label_id_map(store, label_set)
    items, seen, bad = [], {}, []
    for i, rec in enumerate(records, start=1):
        _, raw_vid = _get(rec, video_field)
        vid_text = _text(raw_vid).strip()
        if not vid_text:
            bad.append(f"row {i} has no video id")
            continue
        if "\x00" in vid_text or len(vid_text) > 1024:
            bad.append(f"row {i} video id is not a file name (a NUL byte or over 1024 characters)")
            continue
        key = video_key(vid_text)
        if key in seen:
            bad.append(f"video {vid_text} appears twice (rows {seen[key]} and {i})")
            continue
        seen[key] = i
        vid = id_map.get(key, vid_text)
        _, ans = _get(rec, answer_field)
        answer = _text(ans)
        gp = classify(answer, pos, neg)
        conf = None
        if confidence_field:
            found, c = _get(rec, confidence_field)
            if found and c not in (None, ""):
                if isinstance(c, (bool, dict, list)):
                    bad.append(f"row {i} confidence {_text(c)[:40]} is not a number")
                    continue
                try:
                    conf = float(c)
                except (TypeError, ValueError):
                    bad.append(f"row {i} confidence '{c}' is not a number")
                    continue
                if not 0.0 <= conf <= 1.0:
                    bad.append(f"row {i} confidence {conf} is outside 0..1")
                    continue
        if gp is None:
            v = Verdict(status="unparsed", raw=answer,
                        reason="The answer matches neither the positive nor the negative pattern.")
        else:
            v = Verdict(ghost_probing=gp, confidence=conf, status="ok", raw=answer)
        items.append((vid, None, v, None, False))
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise PredictionsImportError(f"{path.name} has {len(bad)} bad row{'s' if len(bad) > 1 else ''}, so nothing was imported: {shown}.")
    options = {"source_file": path.name, "format": fmt, "video_field": video_field, "answer_field": answer_field,
               "positive": positive, "negative": negative, "confidence_field": confidence_field}
    run_id = create_run(store, engine="external", model=model, label_set=label_set,
                        selection=[it[0] for it in items], options=options, name=name, status="imported",
                        location=None)
    try:
        add_predictions(store, run_id, items)
    except BaseException:
        delete_predictions(store, run_id)
        with store.write() as cur:
            cur.execute("DELETE FROM runs WHERE run_id = ?", [run_id])
        raise
    with store.write() as cur:
        cur.execute("UPDATE runs SET finished_at = current_timestamp WHERE run_id = ?", [run_id])
    labelled = sum(1 for it in items if video_key(it[0]) in id_map)
    return {
        "run_id": run_id, "name": name, "label_set": label_set, "format": fmt, "rows": len(items),
        "yes": sum(1 for it in items if it[2].ghost_probing is True),
        "no": sum(1 for it in items if it[2].ghost_probing is False),
        "unparsed": sum(1 for it in items if it[2].status == "unparsed"),
        "labelled": labelled, "unlabelled": len(items) - labelled,
    }
