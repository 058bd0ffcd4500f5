import threading

import duckdb
import pytest

from reports.migrations import MIGRATIONS
from reports.store import Store, StoreError


def test_fresh_store_applies_every_migration_once(tmp_path):
    path = tmp_path / "a.duckdb"
    s = Store(path)
    assert s.applied == [name for name, _ in MIGRATIONS]
    s.close()
    s2 = Store(path)  # reopening applies nothing: migrations are idempotent
    assert s2.applied == []
    assert [m["name"] for m in s2.migrations()] == [name for name, _ in MIGRATIONS]
    assert s2.scalar("SELECT count(*) FROM _migrations") == len(MIGRATIONS)
    s2.close()


def test_older_schema_file_upgrades_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.duckdb"
    # Build a file as the first release left it: only the first two migrations, with data in it.
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)")
    for name, fn in MIGRATIONS[:2]:
        fn(con)
        con.execute("INSERT INTO _migrations (name) VALUES (?)", [name])
    con.execute("INSERT INTO videos (video_id, sha256, path, origin) VALUES ('a.mp4', 'x', '/tmp/a.mp4', 'library')")
    con.execute("INSERT INTO label_sets (name, source) VALUES ('s', 'csv:s.csv')")
    con.execute("INSERT INTO labels VALUES ('s', 'a.mp4', true, 'ghost_probing', 2.0, NULL, 'csv')")
    con.close()

    s = Store(path)
    assert s.applied == [name for name, _ in MIGRATIONS[2:]]
    assert s.scalar("SELECT count(*) FROM videos") == 1
    assert s.query("SELECT onset_s FROM labels")[0]["onset_s"] == 2.0
    assert "runs" in s.info()["tables"]
    s.close()


def test_failed_write_rolls_back_whole(store):
    with pytest.raises(RuntimeError):
        with store.write() as cur:
            cur.execute("INSERT INTO label_sets (name, source) VALUES ('x', 'test')")
            raise RuntimeError("boom")
    assert store.scalar("SELECT count(*) FROM label_sets") == 0


def test_eight_threads_reading_and_writing_lose_nothing(store):
    n_threads, per_thread = 8, 60
    errors: list[BaseException] = []
    seen_counts: list[int] = []

    def work(k: int) -> None:
        try:
            for i in range(per_thread):
                with store.write() as cur:
                    cur.execute("INSERT INTO labels VALUES (?, ?, ?, 'none', NULL, NULL, 't')", [f"set{k}", f"v{i}", False])
                seen_counts.append(store.scalar("SELECT count(*) FROM labels WHERE label_set = ?", [f"set{k}"]))
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert store.scalar("SELECT count(*) FROM labels") == n_threads * per_thread
    assert store.scalar("SELECT count(DISTINCT label_set) FROM labels") == n_threads
    assert max(seen_counts) == per_thread


def test_not_a_database_is_one_sentence(tmp_path):
    bad = tmp_path / "notes.duckdb"
    bad.write_text("this is not a database\n" * 100)
    with pytest.raises(StoreError) as e:
        Store(bad)
    assert "\n" not in str(e.value)
    assert bad.read_text().startswith("this is not a database")  # nothing overwritten
