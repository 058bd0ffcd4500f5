"""engines.synth: the generated dashcam clips the demo and the baseline tests rely on."""

from __future__ import annotations

import csv
from pathlib import Path

import av
import numpy as np
import pytest

from engines import synth


def demo_dir(tmp_path_factory) -> Path:
    """The demo set, rendered once per test session (shared with test_baseline.py)."""
    d = tmp_path_factory.getbasetemp() / "synth_demo_s0"
    if not (d / "labels.csv").exists():
        synth.render_demo_clips(d, seed=0)
    return d


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return demo_dir(tmp_path_factory)


def _decode(path: Path) -> tuple[np.ndarray, float, str]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(s)])
        return frames, float(s.average_rate), s.codec_context.name


def test_demo_set_is_labelled_browser_playable_h264(demo):
    rows = list(csv.DictReader((demo / "labels.csv").open(encoding="utf-8")))
    assert list(rows[0]) == ["video_id", "ghost_probing", "onset_s", "note"]
    pos = [r for r in rows if r["ghost_probing"] == "1"]
    neg = [r for r in rows if r["ghost_probing"] == "0"]
    assert len(pos) >= 3 and len(neg) >= 3
    assert all(r["onset_s"] for r in pos) and not any(r["onset_s"] for r in neg)
    assert any("cut" in r["video_id"] for r in neg)  # a cut-in is a negative
    for r in rows:
        p = demo / r["video_id"]
        assert p.suffix == ".mp4" and p.exists()
        with av.open(str(p)) as c:
            s = c.streams.video[0]
            assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
            assert (s.codec_context.width, s.codec_context.height) == (640, 360)
            assert float(s.average_rate) == 15
            dur = s.frames / float(s.average_rate)
            assert 4.0 <= dur <= 6.0
        head = p.read_bytes()[:4096]
        assert b"moov" in head  # faststart: the index comes first, so browsers start playing at once


def test_positive_onset_is_measured_near_the_request(tmp_path):
    info = synth.render_clip(tmp_path / "p.mp4", "emerge_pedestrian", seed=3, size=(320, 180),
                             duration_s=3.0, onset_s=1.5)
    assert info["ghost_probing"] is True and info["object_type"] == "pedestrian"
    assert abs(info["onset_s"] - 1.5) <= 0.3
    assert info["max_visible_fraction"] > 0.8  # it does come fully into view
    neg = synth.render_clip(tmp_path / "n.mp4", "cut_in", seed=3, size=(320, 180), duration_s=2.0)
    assert neg["ghost_probing"] is False and neg["onset_s"] is None and neg["kind"] == "cut_in"


def test_same_seed_same_pixels_other_seed_differs(tmp_path):
    a = synth.render_clip(tmp_path / "a.avi", "far_crossing", seed=5, size=(160, 90), duration_s=0.6, codec="mpeg4")
    b = synth.render_clip(tmp_path / "b.avi", "far_crossing", seed=5, size=(160, 90), duration_s=0.6, codec="mpeg4")
    c = synth.render_clip(tmp_path / "c.avi", "far_crossing", seed=6, size=(160, 90), duration_s=0.6, codec="mpeg4")
    fa, fps, codec = _decode(tmp_path / "a.avi")
    fb, _, _ = _decode(tmp_path / "b.avi")
    fc, _, _ = _decode(tmp_path / "c.avi")
    assert codec == "mpeg4" and fps == 15 and fa.shape == (9, 90, 160, 3)
    assert np.array_equal(fa, fb) and not np.array_equal(fa, fc)
    assert {k: v for k, v in a.items() if k not in ("video_id", "path")} == \
        {k: v for k, v in b.items() if k not in ("video_id", "path")}
    # not trivially clean: sensor noise makes consecutive frames of a still region differ
    assert float(np.abs(fa[1, :10].astype(int) - fa[2, :10].astype(int)).mean()) > 0.3


def test_edge_cases_are_written(tmp_path):
    paths = synth.render_edge_cases(tmp_path)
    assert set(paths) == set(synth.EDGE_CASES)
    counts = {}
    for name, p in paths.items():
        frames, _, _ = _decode(p)
        counts[name] = frames.shape
    assert counts["single_frame"][0] == 1
    assert counts["short_clip"][0] / 15 < 1.0
    assert counts["tiny_frames"][1:3] == (18, 32)
    black, _, _ = _decode(paths["black_frames"])
    assert black.max() <= 20


def test_unknown_scenario_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown scenario"):
        synth.render_clip(tmp_path / "x.mp4", "flying_saucer")
    with pytest.raises(ValueError, match="codec"):
        synth.render_clip(tmp_path / "x.mp4", "empty_road", codec="vp9", duration_s=0.2, size=(64, 36))
