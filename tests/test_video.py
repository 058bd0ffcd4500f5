"""engines.video against real encoders and decoders: generated clips, frame folders, broken files,
and (when present) the real DADA-2000 clips beside the repo. No mocks."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import media as M  # noqa: E402  (tests/media.py)

from engines import video as V  # noqa: E402
from engines.errors import VideoError  # noqa: E402
from engines.types import Clip, VideoMeta  # noqa: E402

DADA_DIR = Path(__file__).resolve().parents[2] / "shared/data/dada-dev"
REPO = Path(__file__).resolve().parents[1]

W, H, N, FPS = 160, 90, 60, 30.0


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    m = {
        "mp4v": M.write_mp4v(d / "clip_mp4v.mp4", N, FPS, (W, H)),
        "avi": M.write_avi_mpeg4(d / "clip_fmp4.avi", N, 25.0, (W, H)),
        "xvid": M.write_avi_mpeg4(d / "clip_xvid.avi", N, FPS, (W, H), fourcc="XVID"),
        "avi_gop5": M.write_avi_pyav(d / "clip_gop5.avi", 90, FPS, (W, H), gop=5),
        "h264": M.write_h264_mp4(d / "clip_h264.mp4", N, FPS, (W, H)),
        "folder": M.write_frame_folder(d / "frames", "1", "001", 30, (W, H), ".jpg"),
        "png_odd": M.write_frame_folder(d / "frames", "5", "017", 20, (161, 91), ".png"),
    }
    return m


@pytest.fixture(scope="session")
def broken(tmp_path_factory, media) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("broken")
    (d / "not_frames").mkdir()
    (d / "not_frames" / "readme.txt").write_text("no images here")
    return {
        "missing": d / "does_not_exist.mp4",
        "dir": d / "not_frames",
        "empty": M.write_empty(d / "empty.mp4"),
        "text": M.write_text_renamed(d / "notes.avi"),
        "random": M.write_random_bytes(d / "noise.mkv"),
        "zero_avi": M.write_zero_frame_avi(d / "zero_frames.avi"),
        "zero_mp4": M.write_zero_frame_mp4(d / "zero_frames.mp4"),
        "trunc_avi": M.truncate_copy(media["avi"], d / "cut_half.avi", 0.5),
        "trunc_avi90": M.truncate_copy(media["avi"], d / "cut_tail.avi", 0.9),
        "trunc_mp4": M.truncate_copy(media["mp4v"], d / "cut_moov.mp4", 0.5),
        "trunc_h264": M.truncate_copy(media["h264"], d / "cut_faststart.mp4", 0.6),
        "garbled": M.garble_header_copy(media["avi"], d / "bad_header.avi"),
        "garbled_mid": M.garble_middle_copy(media["avi"], d / "bad_middle.avi"),
    }


# -- probe ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, fps, codec",
    [("mp4v", FPS, "mpeg4"), ("avi", 25.0, "mpeg4"), ("xvid", FPS, "mpeg4"), ("h264", FPS, "h264")],
)
def test_probe_files(media, key, fps, codec):
    p = media[key]
    m = V.probe(p)
    assert isinstance(m, VideoMeta)
    assert (m.frames, m.fps, m.width, m.height, m.codec) == (N, fps, W, H, codec)
    assert m.duration_s == pytest.approx(N / fps)
    # the fastest measured first (bench_video): PyAV for MPEG-4 Part 2, OpenCV otherwise
    assert m.kind == "file" and m.backend == ("pyav" if codec == "mpeg4" else "opencv")
    assert m.size_bytes == p.stat().st_size
    assert m.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
    assert m.path == str(p)
    om = V.probe(p, backend="opencv")
    assert (om.frames, om.fps, om.width, om.height, om.backend) == (N, fps, W, H, "opencv")


def test_probe_frame_folder(media):
    clip_dir = media["folder"]
    for p in (clip_dir, clip_dir / "images"):
        m = V.probe(p)
        assert (m.frames, m.fps, m.width, m.height, m.codec) == (30, 30.0, W, H, "jpeg")
        assert (m.kind, m.backend) == ("frames", "images")
        assert m.duration_s == pytest.approx(1.0)
        assert m.size_bytes == sum(f.stat().st_size for f in (clip_dir / "images").iterdir())
    assert V.probe(clip_dir, fps=10).duration_s == pytest.approx(3.0)
    png = V.probe(media["png_odd"])
    assert (png.codec, png.width, png.height, png.frames) == ("png", 161, 91, 20)


def test_is_frame_folder(media, tmp_path):
    clip_dir = media["folder"]
    assert V.is_frame_folder(clip_dir)
    assert V.is_frame_folder(clip_dir / "images")
    assert V.is_frame_folder(str(clip_dir))
    assert not V.is_frame_folder(clip_dir.parent)  # the category folder holds clips, not images
    assert not V.is_frame_folder(media["mp4v"])
    assert not V.is_frame_folder(tmp_path / "nope")
    assert not V.is_frame_folder(tmp_path)


def test_frame_folder_with_a_broken_image(tmp_path):
    clip_dir = M.write_frame_folder(tmp_path, "1", "003", 10)
    (clip_dir / "images" / "0005.jpg").write_bytes(b"not a jpeg")
    assert V.probe(clip_dir).frames == 10  # probe reads only the first image
    with pytest.raises(VideoError) as err:
        V.load_clip(clip_dir, num_frames=10)
    assert str(err.value) == 'The frame "0005.jpg" in "003" is not a readable image.'
    (clip_dir / "images" / "0001.jpg").write_bytes(b"")
    with pytest.raises(VideoError, match="0001.jpg"):
        V.probe(clip_dir)


def test_frame_folder_natural_order(tmp_path):
    images = tmp_path / "clip" / "images"
    images.mkdir(parents=True)
    import cv2

    for i in range(12):  # 1.png, 2.png … 12.png: plain string order would put 10, 11, 12 before 2
        cv2.imwrite(str(images / f"{i + 1}.png"), cv2.cvtColor(M.pattern_frame(i), cv2.COLOR_RGB2BGR))
    clip = V.load_clip(tmp_path / "clip", num_frames=12)
    assert [M.read_index(f) for f in clip.frames] == list(range(12))


# -- sampling ---------------------------------------------------------------------------------


def _centres(n: int, k: int) -> list[int]:
    return [int((i + 0.5) * n / k) for i in range(k)]


@pytest.mark.parametrize("key", ["mp4v", "avi", "h264", "folder"])
def test_uniform_sampling(media, key):
    clip = V.load_clip(media[key], num_frames=16)
    n = 30 if key == "folder" else N
    assert isinstance(clip, Clip)
    assert clip.frames.shape == (16, H, W, 3) and clip.frames.dtype == np.uint8
    assert clip.indices == _centres(n, 16)
    assert [M.read_index(f) for f in clip.frames] == clip.indices  # the decoder returned those frames
    assert clip.timestamps_s == pytest.approx([i / clip.meta.fps for i in clip.indices])
    assert clip.fps == clip.meta.fps and clip.duration_s == clip.meta.duration_s
    assert clip.sha256 == clip.meta.sha256 and clip.source == str(media[key])
    assert clip.sampling == {"num_frames": 16, "fps": None, "max_side": None, "backend": clip.meta.backend}
    # RGB order: the bottom-left corner is red
    r, g, b = clip.frames[0, H - 5, 5].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_max_side_keeps_aspect(media):
    clip = V.load_clip(media["avi"], num_frames=8, max_side=64)
    assert clip.frames.shape == (8, 36, 64, 3)
    assert clip.sampling["max_side"] == 64
    assert [M.read_index(f) for f in clip.frames] == clip.indices
    big = V.load_clip(media["avi"], num_frames=2, max_side=1000)  # never enlarges
    assert big.frames.shape == (2, H, W, 3)
    folder = V.load_clip(media["folder"], num_frames=4, max_side=80)
    assert folder.frames.shape == (4, 45, 80, 3)


def test_fps_sampling(media):
    clip = V.load_clip(media["mp4v"], fps=10)
    assert clip.indices == list(range(0, N, 3))
    assert [M.read_index(f) for f in clip.frames] == clip.indices
    assert clip.timestamps_s == pytest.approx([i / FPS for i in range(0, N, 3)])
    # Rate sampling decodes densely; for MPEG-4 Part 2 PyAV goes first (fastest measured).
    assert clip.sampling == {"num_frames": None, "fps": 10.0, "max_side": None, "backend": "pyav"}
    assert V.load_clip(media["h264"], fps=10).sampling["backend"] == "opencv"
    assert V.load_clip(media["mp4v"], num_frames=4, fps=5).indices == list(range(0, N, 6))  # fps wins
    assert V.load_clip(media["mp4v"], fps=60).indices == list(range(N))  # above native: every frame
    assert V.load_clip(media["avi"], fps=2).indices == [0, 12, 25, 37, 50]  # 25 fps / 2 = every 12.5


def test_time_window(media):
    clip = V.load_clip(media["mp4v"], num_frames=4, start_s=0.5, end_s=1.0)  # frames 15..29
    assert clip.indices == [15 + i for i in _centres(15, 4)]
    assert all(0.5 <= t < 1.0 for t in clip.timestamps_s)
    assert clip.sampling["start_s"] == 0.5 and clip.sampling["end_s"] == 1.0
    tail = V.load_clip(media["mp4v"], fps=10, start_s=1.5)
    assert tail.indices == [45, 48, 51, 54, 57]
    with pytest.raises(VideoError, match="past the end"):
        V.load_clip(media["mp4v"], start_s=5.0)
    with pytest.raises(VideoError, match="empty"):
        V.load_clip(media["mp4v"], start_s=1.0, end_s=0.5)


def test_more_samples_than_frames_repeats(media):
    clip = V.load_clip(media["folder"], num_frames=45)
    assert clip.frames.shape[0] == 45
    assert clip.indices == sorted(clip.indices) and set(clip.indices) == set(range(30))
    assert [M.read_index(f) for f in clip.frames] == clip.indices


def test_bad_arguments(media):
    with pytest.raises(ValueError):
        V.load_clip(media["mp4v"], num_frames=0)
    with pytest.raises(ValueError):
        V.load_clip(media["mp4v"], num_frames=None, fps=None)
    with pytest.raises(ValueError):
        V.load_clip(media["mp4v"], fps=-1)
    with pytest.raises(ValueError):
        V.load_clip(media["mp4v"], max_side=0)
    with pytest.raises(ValueError):
        V.load_clip(media["mp4v"], backend="ffmpeg")


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(1, 5000),
    k=st.integers(1, 64),
    native=st.sampled_from([10.0, 24.0, 25.0, 29.97, 30.0, 60.0]),
    rate=st.floats(0.1, 120.0),
    data=st.data(),
)
def test_sample_indices_properties(total, k, native, rate, data):
    start = data.draw(st.integers(0, total - 1))
    stop = data.draw(st.integers(start + 1, total))
    uni = V.sample_indices(total, native, k, None, start, stop)
    assert len(uni) == k
    assert all(start <= i < stop for i in uni) and uni == sorted(uni)
    if k <= stop - start:
        assert len(set(uni)) == k  # no repeats while there are enough frames
    by_rate = V.sample_indices(total, native, k, rate, start, stop)
    assert by_rate[0] == start and all(start <= i < stop for i in by_rate)
    assert all(b > a for a, b in zip(by_rate, by_rate[1:]))
    if rate >= native:
        assert by_rate == list(range(start, stop))
    else:
        assert len(by_rate) == pytest.approx((stop - start) * rate / native, abs=1.01)


# -- backends ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["mp4v", "avi", "xvid", "h264", "avi_gop5"])
def test_decord_and_opencv_agree(media, key):
    d = V.load_clip(media[key], num_frames=12, backend="decord")
    o = V.load_clip(media[key], num_frames=12, backend="opencv")
    assert d.sampling["backend"] == "decord" and o.sampling["backend"] == "opencv"
    assert d.indices == o.indices
    assert [M.read_index(f) for f in d.frames] == d.indices
    assert [M.read_index(f) for f in o.frames] == o.indices
    assert np.abs(d.frames.astype(int) - o.frames.astype(int)).mean() < 2.0


@pytest.mark.parametrize("seek_cost", [-(10**6), 10**6], ids=["always-seek", "never-seek"])
def test_opencv_seek_and_grab_paths_are_exact(media, monkeypatch, seek_cost):
    monkeypatch.setattr(V.decoders, "OPENCV_SEEK_COST", seek_cost)  # read at call time there
    clip = V.load_clip(media["avi_gop5"], num_frames=7, backend="opencv")  # keyframe every 5 frames
    assert [M.read_index(f) for f in clip.frames] == clip.indices == _centres(90, 7)
    sparse = V.load_clip(media["mp4v"], fps=3, backend="opencv")
    assert [M.read_index(f) for f in sparse.frames] == sparse.indices == list(range(0, N, 10))


def test_containers_without_frame_index_are_read_exactly(tmp_path):
    """decord returns wrong frames for sparse indices in MPEG-PS/TS (measured): those files must
    go to OpenCV without seeking (or PyAV), and forcing decord on them is refused."""
    for p in (M.write_mpeg_ps(tmp_path / "clip.mpg"), M.write_mpeg_ts(tmp_path / "clip.ts", 90)):
        m = V.probe(p)
        assert m.backend == "opencv"
        for backend in (None, "opencv", "pyav"):
            clip = V.load_clip(p, num_frames=8, backend=backend)
            assert [M.read_index(f) for f in clip.frames] == clip.indices == _centres(m.frames, 8)
        with pytest.raises(VideoError, match="frame-accurately with decord"):
            V.load_clip(p, num_frames=8, backend="decord")
        assert [M.read_index(f) for _, _, f in V.iter_frames(p, fps=10)] == list(range(0, m.frames, 3))


def test_av1_falls_back_to_pyav(tmp_path):
    import av

    if "libsvtav1" not in av.codecs_available:
        pytest.skip("this PyAV has no AV1 encoder")
    p = M.write_av1_mp4(tmp_path / "clip_av1.mp4", 20)
    m = V.probe(p)
    assert (m.codec, m.frames, m.backend) == ("av1", 20, "pyav")  # decord cannot open it, OpenCV cannot decode it
    clip = V.load_clip(p, num_frames=5)
    assert clip.sampling["backend"] == "pyav"
    assert [M.read_index(f) for f in clip.frames] == clip.indices == _centres(20, 5)
    assert M.read_index(V.thumbnail(p)) == 20 // 3
    assert V.make_playable(p, tmp_path / "cache") == p  # AV1 in MP4 plays in browsers as is


def test_iter_frames(media):
    it = V.iter_frames(media["mp4v"])
    assert iter(it) is it  # a generator: nothing is held beyond the current batch
    rows = list(it)
    assert [i for i, _, _ in rows] == list(range(N))
    assert [t for _, t, _ in rows] == pytest.approx([i / FPS for i in range(N)])
    assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 for _, _, f in rows)
    assert [M.read_index(f) for _, _, f in rows] == list(range(N))

    at10 = list(V.iter_frames(media["avi"], fps=5, max_side=80))  # 25 fps -> every 5th frame
    assert [i for i, _, _ in at10] == list(range(0, N, 5))
    assert at10[0][2].shape == (45, 80, 3)
    assert [M.read_index(f) for _, _, f in at10] == list(range(0, N, 5))
    for backend in ("opencv", "decord"):
        rows = list(V.iter_frames(media["avi"], fps=5, backend=backend))
        assert [i for i, _, _ in rows] == list(range(0, N, 5))
        assert [M.read_index(f) for _, _, f in rows] == list(range(0, N, 5))
    folder = list(V.iter_frames(media["folder"], fps=10))
    assert [i for i, _, _ in folder] == list(range(0, 30, 3))


def test_backend_order_from_environment(media, monkeypatch):
    monkeypatch.setenv(V.BACKEND_ENV, "opencv")
    assert V.probe(media["xvid"]).backend == "opencv"
    clip = V.load_clip(media["xvid"], num_frames=4)
    assert clip.sampling["backend"] == "opencv" and [M.read_index(f) for f in clip.frames] == clip.indices
    assert V.load_clip(media["xvid"], num_frames=4, backend="decord").sampling["backend"] == "decord"
    monkeypatch.setenv(V.BACKEND_ENV, "decord")
    assert V.probe(media["xvid"]).backend == "decord"


# -- hashing ----------------------------------------------------------------------------------


def test_sha256(media, tmp_path):
    p = media["h264"]
    assert V.sha256_file(p) == V.sha256_file(str(p)) == hashlib.sha256(p.read_bytes()).hexdigest()
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * (1 << 20) + 17))  # spans several read chunks
    assert V.sha256_file(big) == hashlib.sha256(big.read_bytes()).hexdigest()

    # frame folder: over sorted image names and bytes; the clip folder and images/ agree
    folder = M.write_frame_folder(tmp_path / "f", "1", "002", 5)
    images = sorted((folder / "images").iterdir())
    h = hashlib.sha256()
    for img in images:
        name, data = img.name.encode(), img.read_bytes()
        h.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big") + data)
    assert V.sha256_file(folder) == V.sha256_file(folder / "images") == h.hexdigest()
    before = V.sha256_file(folder)
    (folder / "images" / "0003.jpg").write_bytes(images[0].read_bytes())
    os.utime(folder / "images" / "0003.jpg", ns=(1, 1))  # new mtime: the memo must not answer
    assert V.sha256_file(folder) != before


# -- broken inputs --------------------------------------------------------------------------

BROKEN_CASES = {
    "missing": ("does_not_exist.mp4", "cannot find"),
    "dir": ("not_frames", "not a frame folder"),
    "empty": ("empty.mp4", "empty"),
    "text": ("notes.avi", "not a video"),
    "random": ("noise.mkv", "not a video"),
    "zero_avi": ("zero_frames.avi", "no video frames"),
    "zero_mp4": ("zero_frames.mp4", "no readable video stream"),
    "trunc_avi": ("cut_half.avi", "truncated"),
    "trunc_avi90": ("cut_tail.avi", "truncated"),
    "trunc_mp4": ("cut_moov.mp4", "truncated"),
    "trunc_h264": ("cut_faststart.mp4", "truncated"),
    "garbled": ("bad_header.avi", "no readable video stream"),
    "garbled_mid": ("bad_middle.avi", "corrupt"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_CASES))
def test_broken_inputs_raise_one_sentence(broken, case):
    name, phrase = BROKEN_CASES[case]
    for call in (V.probe, V.load_clip, V.thumbnail):
        with pytest.raises(VideoError) as err:
            call(broken[case])
        msg = str(err.value)
        assert name in msg
        assert phrase in msg.lower()
        assert "\n" not in msg and "\r" not in msg
        assert msg.endswith(".") and len(msg) < 200
        for junk in ("Traceback", "Errno", "@ 0x", "avcodec", "DECORDError", "cap_ffmpeg"):
            assert junk not in msg
    with pytest.raises(VideoError):
        list(V.iter_frames(broken[case]))


def test_corrupt_inputs_do_not_kill_the_process(broken, media, tmp_path):
    """Run every broken file (plus files whose packets are garbage inside an intact container)
    through every entry point in a child process: it must finish and report VideoError or frames."""
    flipped = [
        M.flip_packet_bytes_copy(media["avi"], tmp_path / "flipped.avi"),
        M.flip_packet_bytes_copy(media["h264"], tmp_path / "flipped_h264.mp4"),
        M.flip_packet_bytes_copy(media["mp4v"], tmp_path / "flipped_mp4v.mp4"),
    ]
    paths = [str(p) for p in (*broken.values(), *flipped)]
    script = r"""
import json, sys
from engines import video as V
from engines.errors import VideoError
out = {}
for p in json.loads(sys.argv[1]):
    res = []
    for fn in ("probe", "load_clip", "thumbnail", "iter_frames", "make_playable"):
        try:
            if fn == "iter_frames":
                list(V.iter_frames(p, fps=10))
            elif fn == "make_playable":
                V.make_playable(p, sys.argv[2])
            else:
                getattr(V, fn)(p)
            res.append("ok")
        except VideoError as e:
            res.append("VideoError:" + str(e))
    out[p] = res
print(json.dumps(out))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run(
        [sys.executable, "-c", script, json.dumps(paths), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )
    assert r.returncode == 0, f"child died with {r.returncode}: {r.stderr[-2000:]}"
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(out) == set(paths)
    for p, res in out.items():
        for item in res:
            assert item == "ok" or ("\n" not in item and Path(p).name in item), (p, item)
    for p in map(str, broken.values()):
        assert all(item.startswith("VideoError:") for item in out[p]), (p, out[p])


# -- real DADA-2000 clips -----------------------------------------------------------------


@pytest.fixture(scope="module")
def dada_clip() -> Path:
    clips = sorted(DADA_DIR.glob("*.avi"), key=lambda p: p.stat().st_size) if DADA_DIR.is_dir() else []
    if not clips:
        pytest.skip(f"DADA-2000 dev clips not found at {DADA_DIR}")
    return clips[0]  # the smallest: keeps the slow checks short


def test_dada_probe_all():
    clips = sorted(DADA_DIR.glob("*.avi")) if DADA_DIR.is_dir() else []
    if not clips:
        pytest.skip(f"DADA-2000 dev clips not found at {DADA_DIR}")
    import av

    for p in clips:
        m = V.probe(p)
        assert (m.width, m.height, m.fps, m.codec, m.kind) == (1584, 660, 30.0, "mpeg4", "file")
        # the README says 5-12 s; the clips measure 3.7-8.2 s
        assert 3.0 <= m.duration_s <= 12.0 and m.frames == round(m.duration_s * 30)
        with av.open(str(p)) as c:
            assert m.frames == c.streams.video[0].frames  # what the AVI header declares


def test_dada_sample16_both_backends(dada_clip):
    d = V.load_clip(dada_clip, num_frames=16, backend="decord", max_side=448)
    o = V.load_clip(dada_clip, num_frames=16, backend="opencv", max_side=448)
    assert d.frames.shape == o.frames.shape == (16, 187, 448, 3)
    assert d.indices == o.indices == _centres(d.meta.frames, 16)
    assert np.abs(d.frames.astype(int) - o.frames.astype(int)).mean() < 1.0
    # neighbouring frames differ more than the two backends do: the same indices were decoded
    shifted = V.load_clip(dada_clip, fps=30, backend="decord", max_side=448)
    gaps = [np.abs(shifted.frames[i].astype(int) - shifted.frames[i + 1].astype(int)).mean() for i in d.indices[:-1]]
    assert np.median(gaps) > np.abs(d.frames.astype(int) - o.frames.astype(int)).mean()


# -- make_playable and thumbnails ---------------------------------------------------------------


def _stream_info(p: Path) -> tuple[str, str, int, int, int]:
    import av

    with av.open(str(p)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return s.codec_context.name, s.codec_context.pix_fmt, s.codec_context.width, s.codec_context.height, n


def _top_level_atoms(p: Path) -> list[bytes]:
    atoms, data, pos = [], p.read_bytes(), 0
    while pos + 8 <= len(data):
        size, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        if size == 1:
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        atoms.append(kind)
        if size < 8:
            break
        pos += size
    return atoms


def test_make_playable_transcodes_once(media, tmp_path):
    cache = tmp_path / "cache"
    out = V.make_playable(media["mp4v"], cache)
    assert out == cache / "playable" / f"{V.sha256_file(media['mp4v'])}.mp4"
    codec, pix_fmt, w, h, n = _stream_info(out)
    assert (codec, pix_fmt, w, h) == ("h264", "yuv420p", W, H)
    assert abs(n - N) <= 1
    atoms = _top_level_atoms(out)
    assert atoms.index(b"moov") < atoms.index(b"mdat")  # +faststart: the index comes first
    mtime = out.stat().st_mtime_ns
    assert V.make_playable(media["mp4v"], cache) == out
    assert out.stat().st_mtime_ns == mtime  # cache hit, no second encode
    assert not [p for p in (cache / "playable").iterdir() if ".tmp" in p.name]


def test_make_playable_avi_and_frame_folder(media, tmp_path):
    cache = tmp_path / "cache"
    avi = V.make_playable(media["avi"], cache)
    codec, pix_fmt, _, _, n = _stream_info(avi)
    assert (codec, pix_fmt) == ("h264", "yuv420p") and abs(n - N) <= 1
    folder = V.make_playable(media["png_odd"], cache)  # 161x91 PNGs: must become even
    codec, pix_fmt, w, h, n = _stream_info(folder)
    assert (codec, pix_fmt, w, h) == ("h264", "yuv420p", 160, 90) and abs(n - 20) <= 1


def test_make_playable_keeps_h264(media, tmp_path):
    assert V.make_playable(media["h264"], tmp_path / "cache") == media["h264"]
    assert V.make_playable(str(media["h264"]), tmp_path / "cache") == media["h264"]
    assert not (tmp_path / "cache" / "playable").exists() or not any((tmp_path / "cache" / "playable").glob("*.mp4"))
    # H.264 that browsers will not play (4:4:4 chroma) is transcoded
    p444 = M.write_h264_mp4(tmp_path / "h264_444.mp4", 10, pix_fmt="yuv444p")
    out = V.make_playable(p444, tmp_path / "cache")
    assert out != p444 and _stream_info(out)[:2] == ("h264", "yuv420p")


def test_make_playable_concurrent_calls_share_one_encode(media, tmp_path):
    cache = tmp_path / "cache"
    results: list[Path] = []
    errors: list[BaseException] = []

    def go():
        try:
            results.append(V.make_playable(media["xvid"], cache))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=go) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    files = [p for p in (cache / "playable").iterdir() if not p.name.startswith(".")]
    assert files == [results[0]]
    assert not [p for p in (cache / "playable").iterdir() if ".tmp" in p.name]
    assert _stream_info(results[0])[4] == N


def test_thumbnail(media, tmp_path):
    t = V.thumbnail(media["avi"])
    assert t.shape == (H, W, 3) and t.dtype == np.uint8
    assert M.read_index(t) == N // 3
    small = V.thumbnail(media["avi"], max_side=80)
    assert small.shape == (45, 80, 3)
    cache = tmp_path / "cache"
    p = V.save_thumbnail(media["folder"], cache)
    assert p == cache / "thumbs" / f"{V.sha256_file(media['folder'])}.jpg"
    import cv2

    img = cv2.imread(str(p))
    assert img.shape == (H, W, 3) and M.read_index(img[:, :, ::-1]) == 10
    mtime = p.stat().st_mtime_ns
    assert V.save_thumbnail(media["folder"], cache) == p and p.stat().st_mtime_ns == mtime
    assert V.save_thumbnail(media["folder"], cache, max_side=64).name.endswith("_64.jpg")


# -- hashing: the clip's own hash is always the current file's -----------------------------------


def test_sha256_follows_a_file_replaced_with_other_bytes_of_the_same_size(tmp_path, media):
    p = tmp_path / "replaced.mp4"
    p.write_bytes(media["mp4v"].read_bytes())
    first = V.sha256_file(p)
    assert first == hashlib.sha256(p.read_bytes()).hexdigest()
    st = p.stat()
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF  # other bytes, same size
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a new mtime, as a copy gets
    assert p.stat().st_size == st.st_size
    second = V.sha256_file(p)
    assert second != first and second == hashlib.sha256(bytes(data)).hexdigest()
    assert V.probe(p).sha256 == second  # probe's memo follows the file too


def test_hash_memo_is_a_bounded_thread_safe_lru(tmp_path):
    lru = V.LRU(3)
    for i in range(5):
        lru.put(i, str(i))
    assert len(lru) == 3 and 0 not in lru and 1 not in lru and lru.get(4) == "4"
    lru.get(2)  # 2 is now the most recent: adding one more drops 3, not 2
    lru.put(9, "9")
    assert 2 in lru and 3 not in lru
    files = []
    for i in range(20):
        f = tmp_path / f"f{i}.bin"
        f.write_bytes(bytes([i]) * 1000)
        files.append(f)
    results: dict[int, str] = {}

    def work(k: int) -> None:
        for f in files:
            results[hash((k, f.name))] = V.sha256_file(f)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for f in files:
        assert V.sha256_file(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    assert len(V._hash_cache) <= V._hash_cache.maxsize


# -- bad sampling options and oversized clips: one sentence, before decoding -------------------


@pytest.mark.parametrize("fps", [0, -1, float("nan"), float("inf"), "fast"])
def test_bad_rates_are_one_sentence(media, fps):
    for call in (lambda: V.load_clip(media["mp4v"], num_frames=None, fps=fps),
                 lambda: V.probe(media["folder"], fps=fps),
                 lambda: list(V.iter_frames(media["mp4v"], fps=fps))):
        with pytest.raises(VideoError) as e:
            call()
        msg = str(e.value)
        assert "\n" not in msg and msg.endswith(".") and "frames per second" in msg, msg


@pytest.mark.parametrize("max_side", [0, -1, 8, 15])
def test_too_small_max_side_is_one_sentence(media, max_side):
    with pytest.raises(VideoError, match=r"at least 16 pixels") as e:
        V.load_clip(media["mp4v"], max_side=max_side)
    assert "\n" not in str(e.value)
    assert V.load_clip(media["mp4v"], num_frames=2, max_side=16).frames.shape[1:] == (9, 16, 3)


def test_too_many_frames_is_refused_before_decoding(media):
    with pytest.raises(VideoError, match=rf"At most {V.MAX_NUM_FRAMES} frames can be sampled from one clip, not 100000\."):
        V.load_clip(media["mp4v"], num_frames=100000)


def test_memory_budget_is_checked_before_decoding(media, monkeypatch, tmp_path):
    # 4000 full-size frames of a 1584x660 clip would be 12 GiB: refused by the default 2 GiB budget
    big = M.write_avi_pyav(tmp_path / "big.avi", n_frames=4, fps=30.0, size=(1584, 660), gop=12)
    with pytest.raises(VideoError) as e:
        V.load_clip(big, num_frames=4000)
    msg = str(e.value)
    assert "over the limit of 2,048 MiB" in msg and V.MAX_CLIP_MB_ENV in msg and "\n" not in msg
    # the budget is configurable; within it the same call works
    monkeypatch.setenv(V.MAX_CLIP_MB_ENV, "1")
    with pytest.raises(VideoError, match="over the limit of 1 MiB"):
        V.load_clip(media["mp4v"], num_frames=40)  # 40 x 160x90x3 = 1.6 MiB
    clip = V.load_clip(media["mp4v"], num_frames=40, color="gray")  # grey: 0.5 MiB fits
    assert clip.frames.shape == (40, H, W)


def test_grey_and_lowres_sampling_match_rgb(media):
    """Grey frames are the luma of the RGB ones (within rounding); lowres keeps indices exact."""
    import cv2

    for key in ("mp4v", "avi", "h264"):
        rgb = V.load_clip(media[key], num_frames=None, fps=10, max_side=80)
        for backend in ("pyav", "opencv"):
            g = V.load_clip(media[key], num_frames=None, fps=10, max_side=80, color="gray", backend=backend)
            assert g.frames.shape == rgb.frames.shape[:3] and g.indices == rgb.indices and g.sampling["color"] == "gray"
            ref = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb.frames]).astype(int)
            assert np.abs(g.frames.astype(int) - ref).mean() < 3.0, (key, backend)
        lo = V.load_clip(media[key], num_frames=None, fps=10, max_side=80, color="gray", lowres=True)
        assert lo.sampling["lowres"] is True and lo.indices == rgb.indices and lo.frames.shape == g.frames.shape
        assert np.abs(lo.frames.astype(int) - ref).mean() < 8.0, key
    assert V.lowres_level(1584, 660, (320, 133), "mpeg4") == 2
    assert V.lowres_level(1584, 660, (320, 133), "h264") == 0
    assert V.lowres_level(640, 360, (320, 180), "mpeg4") == 1


# -- still images renamed to a video --------------------------------------------------------------


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_still_image_renamed_mp4_is_refused(tmp_path, ext, env_dirs, store):
    import cv2

    img = np.random.default_rng(0).integers(0, 256, (90, 160, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, img)
    p = tmp_path / "photo.mp4"
    p.write_bytes(buf.tobytes())
    for call in (lambda: V.probe(p), lambda: V.load_clip(p), lambda: V.load_clip(p, num_frames=None, fps=10)):
        with pytest.raises(VideoError, match=r'"photo\.mp4" is a still image, not a video\.'):
            call()
    from webapp.config import load_config
    from webapp.library import Library

    lib = Library(load_config(), store)
    with pytest.raises(VideoError, match="is a still image, not a video"):
        lib.add_upload(p, "photo.mp4")
    assert store.scalar("SELECT count(*) FROM videos") == 0


def test_decoder_thread_limit_changes_no_frame(media, monkeypatch):
    """An eval worker's thread share (limit_threads) changes only the threads: the same frames, bit for bit."""
    import cv2

    before = cv2.getNumThreads()
    for key in ("avi", "h264"):
        monkeypatch.delenv(V.DECODE_THREADS_ENV, raising=False)
        assert V.decode_threads() == 0  # FFmpeg's choice
        free = V.load_clip(media[key], num_frames=None, fps=10, max_side=80, color="gray", lowres=True,
                           backend="pyav")
        monkeypatch.setenv(V.DECODE_THREADS_ENV, "1")
        assert V.decode_threads() == 1
        one = V.load_clip(media[key], num_frames=None, fps=10, max_side=80, color="gray", lowres=True,
                          backend="pyav")
        assert one.indices == free.indices and np.array_equal(one.frames, free.frames), key
    monkeypatch.setenv(V.DECODE_THREADS_ENV, "lots")
    assert V.decode_threads() == 0  # not a number: FFmpeg's choice, never a crash
    try:
        V.limit_threads(1)
        assert cv2.getNumThreads() == 1 and os.environ[V.DECODE_THREADS_ENV] == "1"
    finally:
        cv2.setNumThreads(before)
