"""One definition of "correct", used by the metrics, the SQL of every report, the Prompt Lab matrix and
run comparisons.

An answer is *valid* when its status is ``ok`` and it says yes or no. Against a label:

- no label → ``None`` (unlabelled: not scored);
- a valid answer → ``answer == label``;
- an unparsed or errored answer → depends on the policy: ``counted_wrong`` (the default: it counts as
  wrong, a false negative on a positive video and a false positive on a negative one) or ``excluded``
  (left out: ``None``). An unparsed answer is never a "no".

:data:`VALID_SQL` and :func:`correct_sql` are the same rule for DuckDB over a predictions alias ``p`` and a
labels alias ``l``.
"""

from __future__ import annotations

POLICIES = ("counted_wrong", "excluded")


def is_valid(status: str | None, answer: bool | None) -> bool:
    return status == "ok" and answer is not None


def is_correct(status: str | None, answer: bool | None, label: bool | None,
               policy: str = "counted_wrong") -> bool | None:
    """True / False, or None when unlabelled or (policy ``excluded``) when the answer is not valid."""
    if label is None:
        return None
    if not is_valid(status, answer):
        return False if policy == "counted_wrong" else None
    return bool(answer) == bool(label)


VALID_SQL = "({p}.status = 'ok' AND {p}.ghost_probing IS NOT NULL)"


def correct_sql(p: str = "p", l: str = "l", policy: str = "counted_wrong") -> str:  # noqa: E741
    """The SQL expression of :func:`is_correct` (NULL when unlabelled)."""
    invalid = "false" if policy == "counted_wrong" else "NULL"
    valid = VALID_SQL.format(p=p)
    return (f"CASE WHEN {l}.video_id IS NULL THEN NULL WHEN NOT {valid} THEN {invalid} "
            f"ELSE {p}.ghost_probing = {l}.ghost_probing END")
