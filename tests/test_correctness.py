"""reports.correctness: the Python rule and the SQL rule agree on every combination, in a real DuckDB."""

from __future__ import annotations

import itertools

import pytest

from reports.correctness import correct_sql, is_correct


@pytest.mark.parametrize("policy", ["counted_wrong", "excluded"])
def test_python_and_sql_agree(store, policy):
    cases = list(itertools.product(["ok", "unparsed", "error"], [True, False, None], [True, False, None]))
    cur = store.cursor()
    cur.execute("CREATE TEMP TABLE p (i INTEGER, status TEXT, ghost_probing BOOLEAN)")
    cur.execute("CREATE TEMP TABLE l (i INTEGER, video_id TEXT, ghost_probing BOOLEAN)")
    for i, (st, ans, lab) in enumerate(cases):
        cur.execute("INSERT INTO p VALUES (?, ?, ?)", [i, st, ans])
        if lab is not None:
            cur.execute("INSERT INTO l VALUES (?, 'v', ?)", [i, lab])
    got = dict(cur.execute(f"SELECT p.i, {correct_sql(policy=policy)} FROM p LEFT JOIN l USING (i)").fetchall())
    for i, (st, ans, lab) in enumerate(cases):
        assert got[i] == is_correct(st, ans, lab, policy), (st, ans, lab)
    # the rules themselves: unlabelled is None, an unparsed answer is never a "no" that happens to be right
    assert is_correct("unparsed", None, False) is False and is_correct("unparsed", None, False, "excluded") is None
    assert is_correct("ok", True, None) is None and is_correct("ok", False, False) is True
