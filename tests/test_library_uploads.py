"""Several files and zips at once into the real library (each video validated on its own), and library folders
added from the UI under GHOSTPROBE_ALLOW_ADD_ROOT with realpath confinement."""

from __future__ import annotations

import os
import zipfile

import pytest

from tests.media import write_mp4v, write_text_renamed


@pytest.fixture
def state(env_dirs):
    from reports.store import Store
    from webapp.config import load_config
    from webapp.library import Library
    from webapp.state import AppState

    cfg = load_config()
    store = Store(cfg.db_path)
    yield AppState(config=cfg, store=store, library=Library(cfg, store))
    store.close()


def test_several_files_and_a_zip_with_bad_members(state, tmp_path):
    from webapp.tabs.library import add_files, upload_report

    src = tmp_path / "src"
    src.mkdir()
    a = write_mp4v(src / "clip_a.mp4", n_frames=20)
    b = write_mp4v(src / "clip_b.mp4", n_frames=25)
    c = write_mp4v(src / "clip_c.mp4", n_frames=30)
    fake = write_text_renamed(src / "fake.mp4")
    z = src / "batch.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(c, "folder/clip_c.mp4")
        zf.write(fake, "folder/fake.mp4")
        zf.writestr("notes.txt", "not a video")
        zf.writestr("../../evil.mp4", "escape attempt")
    bad_zip = src / "broken.zip"
    bad_zip.write_bytes(b"PK\x03\x04 this is not really a zip")
    res = add_files(state, [a, b, z, bad_zip, a], "en")
    assert sorted(r["video_id"] for r in res["added"]) == ["clip_a.mp4", "clip_b.mp4", "clip_c.mp4"]
    assert [r["video_id"] for r in res["known"]] == ["clip_a.mp4"]  # the same bytes again: recognised
    bad = res["bad"]
    assert len(bad) == 4, bad  # fake.mp4, notes.txt, evil.mp4, broken.zip — one sentence each
    assert any(s.startswith("fake.mp4") or "fake.mp4" in s for s in bad)
    assert any("notes.txt" in s and "not a video file" in s for s in bad)
    assert any("broken.zip is not a readable zip file." == s for s in bad)
    assert not (tmp_path / "evil.mp4").exists() and not (state.config.data_dir / "evil.mp4").exists()
    stored = [p for p in state.config.uploads_dir.iterdir() if p.suffix == ".mp4"]
    assert len(stored) == 3  # nothing written for the bad ones
    report = upload_report(res, 5, "zh")
    assert report.startswith("⚠️ ") and report.count("\n- ⚠️ ") == 4
    assert "处理了 8 个文件（zip 中的文件逐个计算）：3 个视频已加入，1 个已在库中，4 个未能加入。" in report


def test_add_root_is_off_by_default_and_confined(state, tmp_path, monkeypatch):
    from webapp import library_roots as RT

    folder = tmp_path / "allowed" / "dashcam"
    folder.mkdir(parents=True)
    write_mp4v(folder / "road.mp4", n_frames=20)
    monkeypatch.delenv(RT.ENV, raising=False)
    with pytest.raises(RT.RootError, match="off"):
        RT.add(state.config, str(folder))
    monkeypatch.setenv(RT.ENV, str(tmp_path / "allowed"))
    outside = tmp_path / "outside"
    outside.mkdir()
    link = tmp_path / "allowed" / "sneaky"
    os.symlink(outside, link)  # a link inside the allowed folder that leads out of it
    for bad, why in ((str(link), "outside the folders"), ("relative/path", "not an absolute path"), ("/", "file system root"),
                     (str(tmp_path / "allowed" / "nope"), "does not exist"),
                     (str(folder / "road.mp4"), "is a file")):
        with pytest.raises(RT.RootError, match=why):
            RT.add(state.config, bad)
    real, new = RT.add(state.config, str(folder))
    assert new and real == folder.resolve() and real in state.config.library_roots
    assert RT.add(state.config, str(folder))[1] is False
    res = state.library.scan()
    assert "road.mp4" in res.added
    # kept for the next start, and only while still allowed
    roots_before = list(state.config.library_roots)
    state.config.library_roots.remove(real)
    assert RT.restore(state.config) == [real]
    state.config.library_roots[:] = roots_before[:-1]
    monkeypatch.setenv(RT.ENV, str(outside))
    assert RT.restore(state.config) == []
    monkeypatch.setenv(RT.ENV, "1")
    with pytest.raises(RT.RootError, match="file system root"):
        RT.check("/")
