"""Library: root-confined paths, hash-keyed uploads, size limit, indexing, demo bootstrap, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engines.errors import VideoError
from reports import labels as lab
from tests.media import write_avi_mpeg4, write_mp4v, write_text_renamed
from webapp.cli import main
from webapp.config import load_config
from webapp.library import Library, LibraryError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def library(env_dirs, store):
    return Library(load_config(), store)


def test_scan_indexes_files_and_frame_folders(library, env_dirs):
    from tests.media import write_frame_folder

    write_mp4v(env_dirs["library"] / "a.mp4")
    write_avi_mpeg4(env_dirs["library"] / "sub" / "b.avi")
    write_frame_folder(env_dirs["library"], category="5", clip="017")
    (env_dirs["library"] / "notes.avi").write_text("not a video")
    res = library.scan()
    assert sorted(res.added) == ["a.mp4", "b.avi", "images_5_017"]
    assert list(res.failed) and "notes.avi" in next(iter(res.failed.values()))
    assert library.scan().added == []  # unchanged files are not probed again
    (env_dirs["library"] / "a.mp4").unlink()
    assert library.scan().removed == ["a.mp4"]


def test_videos_under_a_root_that_was_dropped_leave_the_library(env_dirs, store, tmp_path, monkeypatch):
    other = tmp_path / "other_root"
    write_mp4v(other / "elsewhere.mp4")
    monkeypatch.setenv("GHOSTPROBE_LIBRARY", os.pathsep.join([str(env_dirs["library"]), str(other)]))
    lib = Library(load_config(), store)
    assert lib.scan().added == ["elsewhere.mp4"]
    monkeypatch.setenv("GHOSTPROBE_LIBRARY", str(env_dirs["library"]))
    lib = Library(load_config(), store)
    assert lib.scan().removed == ["elsewhere.mp4"]
    assert (other / "elsewhere.mp4").exists()  # the file itself is untouched


def test_paths_outside_roots_are_refused(library, env_dirs, tmp_path):
    outside = write_mp4v(tmp_path / "outside.mp4")
    inside = write_mp4v(env_dirs["library"] / "in.mp4")
    assert library.safe_path(inside) == inside.resolve()
    for bad in [outside, env_dirs["library"] / ".." / "outside.mp4", "../outside.mp4", "/etc/passwd"]:
        with pytest.raises(LibraryError, match="outside the library"):
            library.safe_path(bad)
    link = env_dirs["library"] / "escape.mp4"
    link.symlink_to(outside)
    with pytest.raises(LibraryError, match="outside the library"):
        library.safe_path(link)
    library.scan()
    ids = [r["video_id"] for r in library.videos()]
    assert "escape.mp4" not in ids and "in.mp4" in ids  # the escaping symlink is never indexed


def test_upload_is_stored_by_hash_and_recognised(library, env_dirs, tmp_path):
    src = write_mp4v(tmp_path / "clip.mp4")
    row, new = library.add_upload(src, "clip.mp4")
    assert new and row["video_id"] == "clip.mp4" and row["origin"] == "upload"
    assert Path(row["path"]).name == f"{row['sha256']}.mp4"
    again, new2 = library.add_upload(src, "renamed.mp4")
    assert not new2 and again["video_id"] == "clip.mp4"
    assert len(list((env_dirs["data"] / "uploads").iterdir())) == 1
    other = write_mp4v(tmp_path / "x" / "clip.mp4", n_frames=30)
    row3, new3 = library.add_upload(other, "clip.mp4")  # same name, different content: kept apart
    assert new3 and row3["video_id"].startswith("clip-") and row3["video_id"] != "clip.mp4"


def test_upload_limits_and_bad_files_store_nothing(env_dirs, store, tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTPROBE_MAX_UPLOAD_MB", "0.001")
    lib = Library(load_config(), store)
    with pytest.raises(LibraryError, match="over the upload limit of 0.001 MB"):
        lib.add_upload(write_mp4v(tmp_path / "big.mp4"), "big.mp4")
    monkeypatch.setenv("GHOSTPROBE_MAX_UPLOAD_MB", "500")
    lib = Library(load_config(), store)
    with pytest.raises(VideoError) as e:
        lib.add_upload(write_text_renamed(tmp_path / "fake.avi"), "fake.avi")
    assert "\n" not in str(e.value)
    txt = tmp_path / "clip.txt"
    write_mp4v(tmp_path / "clip.mp4").rename(txt)
    with pytest.raises(LibraryError, match="not a video file"):
        lib.add_upload(txt, "clip.txt")
    assert list((env_dirs["data"] / "uploads").iterdir()) == []
    assert store.scalar("SELECT count(*) FROM videos") == 0


def test_playable_transcodes_mpeg4_avi_once(library, env_dirs):
    import av

    write_avi_mpeg4(env_dirs["library"] / "b.avi")
    library.scan()
    out = library.playable("b.avi")
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    assert library.playable("b.avi") == out


def test_demo_clips_bootstrap_an_empty_library(library, env_dirs):
    made = library.ensure_demo_clips()
    assert len(made) >= 6
    assert library.ensure_demo_clips() == []  # not twice
    demo = lab.list_sets(library.store, "demo")[0]
    assert demo["videos"] == len(made) and 0 < demo["ghost_probing"] < len(made)
    rows = library.videos("demo", "ghost_probing")
    assert rows and all(r["label"]["ghost_probing"] for r in rows)


def test_cli_core_commands(env_dirs, capsys, dada_dir):
    db = str(env_dirs["db"])
    assert main(["--db", db, "labels", "import", str(dada_dir / "labels.csv"), "--set", "dada-dev"]) == 0
    capsys.readouterr()
    assert main(["--db", db, "labels", "list", "--set", "dada-dev", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 12 and {"video_id", "label_set", "ghost_probing", "kind", "onset_s", "note"} <= set(rows[0])
    assert sum(r["ghost_probing"] for r in rows) == 6
    assert main(["--db", db, "probe", str(dada_dir / "images_5_046.avi"), "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert {"frames", "fps", "duration_s", "width", "height", "codec", "sha256"} <= set(meta)
    assert (meta["width"], meta["height"], round(meta["fps"])) == (1584, 660, 30)
    assert main(["--db", db, "db", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tables"]["labels"] == 12


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "webapp.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_cli_user_errors_exit_2_with_one_sentence(env_dirs, tmp_path):
    db = str(env_dirs["db"])
    bad = tmp_path / "bad.csv"
    bad.write_text("video_id,ground_truth_label\na.avi,perhaps\n")
    cases = [
        ("probe", str(tmp_path / "missing.mp4")),
        ("probe", str(write_text_renamed(tmp_path / "fake.avi"))),
        ("labels", "import", str(bad), "--set", "x"),
        ("labels", "preset", "nope", "--set", "x"),
        ("labels", "list", "--set", "nope"),
        ("probe",),  # argparse usage error
    ]
    for args in cases:
        r = _run("--db", db, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        err = r.stderr.strip()
        assert "Traceback" not in err and len(err.splitlines()) == 1, (args, err)


def test_cli_library_list_and_demo_clips(env_dirs, tmp_path):
    r = _run("demo-clips", str(env_dirs["library"] / "demo"))
    assert r.returncode == 0, r.stderr
    r = _run("--db", str(env_dirs["db"]), "library", "list", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) >= 6 and all(row["codec"] == "h264" for row in rows)
