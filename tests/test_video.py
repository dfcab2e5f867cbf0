"""The runtime's reader: decode plans, and the right frames from every kind of file.

Every clip is generated here with PyAV; each frame carries its own index as a barcode, so a
test reads back exactly which frames the reader returned.
"""

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from fan_edge.data.sampling import segment_indices
from fan_edge.errors import FanEdgeError
from fan_edge.runtime.video import StreamIndex, make_plan, open_video, read_clip
from fan_edge.runtime.video.clips import read_barcode, write_clip

FRAMES = 40

# name -> (write_clip options, width, height)
CLIPS = {
    "h264 B-frames, keyframe every 8": (dict(gop=8), 96, 64),
    "h264 one keyframe": (dict(gop=250), 96, 64),
    "h264 no B-frames": (dict(gop=12, bframes=0), 96, 64),
    "h264 rotated 90": (dict(gop=10, rotation=90), 96, 64),
    "h264 rotated 180": (dict(gop=10, rotation=180), 96, 64),
    "h264 rotated 270": (dict(gop=10, rotation=270), 96, 64),
    "h264 variable frame rate (mkv)": (dict(gop=10, vfr=True, suffix=".mkv"), 96, 64),
    "h264 audio stream first": (dict(gop=10, audio_first=True), 96, 64),
    "h264 10-bit": (dict(gop=10, pix_fmt="yuv420p10le"), 96, 64),
    "h264 odd size 4:4:4 (mkv)": (dict(gop=10, pix_fmt="yuv444p", suffix=".mkv"), 97, 61),
    "h264 portrait": (dict(gop=10), 64, 96),
    "hevc": (dict(codec="hevc", gop=10), 96, 64),
    "vp9": (dict(codec="vp9", gop=10), 96, 64),
    "av1": (dict(codec="av1", gop=10), 96, 64),
    "mpeg4 avi": (dict(codec="mpeg4", gop=10), 96, 64),
    "mpeg2 program stream (.mpg)": (dict(codec="mpeg2", gop=10), 96, 64),
    "mjpeg avi": (dict(codec="mjpeg"), 96, 64),
    "gif": (dict(codec="gif"), 96, 64),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from fan_edge.runtime.video.clips import ENCODERS

    folder = tmp_path_factory.mktemp("clips")
    out = {}
    for i, (name, (opts, w, h)) in enumerate(CLIPS.items()):
        opts = dict(opts)
        suffix = opts.pop("suffix", ENCODERS[opts.get("codec", "h264")][1])
        out[name] = write_clip(folder / f"clip{i}{suffix}", FRAMES, w, h, **opts)
    return out


def barcodes(frames: np.ndarray, rotation: int = 0) -> list[int]:
    """Indices read back; a rotated clip is turned back to its stored orientation first."""
    k = -round(rotation / 90) % 4
    return [read_barcode(np.rot90(f, k)) for f in frames]


@pytest.mark.parametrize("name", list(CLIPS))
def test_frames_returned_are_exactly_the_planned_ones_upright(name, clips):
    opts, w, h = CLIPS[name]
    rotation = opts.get("rotation", 0)
    for n in (4, 8, 16):
        frames, record = read_clip(clips[name], n)
        want = [int(i) for i in segment_indices(FRAMES, n)]
        assert record.input_frames == FRAMES and record.indices == want
        assert barcodes(frames, rotation) == want, name
        upright = (w, h) if rotation % 180 == 0 else (h, w)
        assert frames.shape == (n, upright[1], upright[0], 3) and frames.dtype == np.uint8
        assert record.decoded <= record.planned or record.fallback
        assert record.rotation % 360 == rotation % 360


def test_plans_seek_only_when_the_keyframe_is_ahead():
    index = StreamIndex(100, (0, 30, 60, 90))
    plan = make_plan(index, [10, 20, 45, 50, 95, 95])
    assert plan.runs == ((0, 20), (30, 50), (90, 95))
    assert plan.decoded == 21 + 21 + 6 and plan.seeks == 3
    assert plan.indices == (10, 20, 45, 50, 95, 95)  # order and repeats kept
    # a keyframe right after the current position is no cheaper than going on
    assert make_plan(index, [29, 31]).runs == ((0, 31),)
    # one keyframe: one sequential run up to the last sampled frame
    assert make_plan(StreamIndex(100, (0,)), [5, 50, 70]).runs == ((0, 70),)
    with pytest.raises(ValueError, match="outside"):
        make_plan(index, [100])


def test_decode_cost_prices_the_group_that_decodes_the_most(monkeypatch):
    """Two decoders side by side: the clip waits for the busier one, not for both."""
    from fan_edge.runtime import decode_cost

    monkeypatch.setattr(decode_cost, "DECODE_THREADS", 2)
    sizes = [1000] * 100
    sizes[0] = sizes[90] = 50_000  # keyframes are the big packets
    index = StreamIndex(100, (0, 30, 60, 90), 1000, 500, "h264", sizes=tuple(sizes))
    plan = make_plan(index, [10, 20, 45, 50, 95])  # runs (0, 20), (30, 50), (90, 95)
    x = dict(zip(decode_cost.FEATURES, decode_cost.features(index, plan), strict=True))
    # groups of about equal frames: [(0, 20), (30, 50)] and [(90, 95)]; 42 frames, 91 kB
    # against 6 frames, 55 kB
    assert plan.split(2) == [((0, 20), (30, 50)), ((90, 95),)]
    assert x["critical_seeks"] == 2 and x["critical_decoded"] == 42
    assert x["critical_decoded_mpx"] == pytest.approx(42 * 0.5)
    assert x["critical_mb"] == pytest.approx(0.091)
    assert x["sampled"] == 5 and x["sampled_mpx"] == pytest.approx(2.5)
    # fewer frames, more megabytes: a group holding one big keyframe is the busier one
    sizes = [1000] * 100
    sizes[90] = 200_000
    index = replace(index, sizes=tuple(sizes))
    x = dict(zip(decode_cost.FEATURES, decode_cost.features(index, plan), strict=True))
    assert x["critical_seeks"] == 1 and x["critical_decoded"] == 6
    assert x["critical_mb"] == pytest.approx(0.205)
    monkeypatch.setattr(decode_cost, "DECODE_THREADS", 1)  # one decoder: the whole plan
    x = dict(zip(decode_cost.FEATURES, decode_cost.features(index, plan), strict=True))
    assert x["critical_seeks"] == 3 and x["critical_decoded"] == 48


def test_seeking_decodes_fewer_frames_than_a_pass(clips):
    """Keyframes every 8 frames: 4 frames from 40 need 4 short runs (20 frames), not 36."""
    with open_video(clips["h264 B-frames, keyframe every 8"]) as video:
        plan = video.plan(4)
        frames, record = video.read(4)
    assert plan.runs == ((0, 5), (8, 15), (24, 25), (32, 35)) and plan.decoded == 20
    assert record.decoded <= plan.decoded and not record.fallback


def test_index_comes_from_packets(clips):
    with open_video(clips["h264 B-frames, keyframe every 8"]) as video:
        index = video.index
    assert index.frames == FRAMES and index.trusted and index.codec == "h264"
    assert index.keyframes == (0, 8, 16, 24, 32) and (index.width, index.height) == (96, 64)
    assert len(index.sizes) == FRAMES and index.sizes[0] == max(index.sizes)  # an I-frame


def test_two_decoders_side_by_side_and_one_stopping_the_other(clips, monkeypatch):
    from fan_edge.runtime.video import pyav

    monkeypatch.setattr(pyav, "DECODE_THREADS", 2)
    path = clips["h264 B-frames, keyframe every 8"]
    with open_video(path) as video:
        assert len(video.plan(8).split(2)) == 2
        frames, record = video.read(8)
    assert barcodes(frames) == record.indices and not record.fallback
    with open_video(path) as video:  # the second group meets a frame the index lacks
        victim = int(video.plan(8).indices[-1])
        del video._position[int(video._pts[victim])]
        frames, record = video.read(8)
    assert "timestamp the index lacks" in record.fallback
    assert barcodes(frames) == record.indices == [int(i) for i in segment_indices(FRAMES, 8)]


def test_a_failing_seek_falls_back_and_keeps_the_callers_indices(clips, monkeypatch):
    """Training reads random indices: after a fallback they are still the ones asked for."""
    from fan_edge.data.video import read_video_frames
    from fan_edge.runtime.video import pyav

    def broken(*_a, **_k):
        raise pyav._PlanBroken("a seek did not land on a keyframe")

    monkeypatch.setattr(pyav.PyAVSource, "_decode_run", broken)
    frames = read_video_frames(clips["h264 B-frames, keyframe every 8"], np.array([3, 17, 5, 5]))
    assert barcodes(frames) == [3, 17, 5, 5]
    with pytest.raises(FanEdgeError, match="only 40 frames decodable, needed frame 45"):
        read_video_frames(clips["h264 B-frames, keyframe every 8"], np.array([3, 45]))


def test_an_index_that_disagrees_with_the_decoder_falls_back_to_counting(clips):
    """A frame the index does not know (as when packets mislead) is detected, not trusted."""
    with open_video(clips["h264 B-frames, keyframe every 8"]) as video:
        victim = int(video.plan(8).indices[3])
        del video._position[int(video._pts[victim])]
        frames, record = video.read(8)
    assert "timestamp the index lacks" in record.fallback
    assert barcodes(frames) == record.indices == [int(i) for i in segment_indices(FRAMES, 8)]


@pytest.mark.parametrize(
    "suffix,opts", [(".mkv", {}), (".mp4", {"faststart": True}), (".avi", {"codec": "mpeg4"})]
)
def test_truncated_files_give_the_frames_that_decode(suffix, opts, tmp_path):
    path = write_clip(tmp_path / f"whole{suffix}", 60, 96, 64, gop=10, **opts)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size * 6 // 10])
    frames, record = read_clip(cut, 8)
    assert 5 < record.input_frames < 60
    assert barcodes(frames) == record.indices
    assert record.indices == [int(i) for i in segment_indices(record.input_frames, 8)]


def test_opencv_decoder_reads_the_same_frames(clips):
    path = clips["h264 B-frames, keyframe every 8"]
    ours, _ = read_clip(path, 8)
    theirs, record = read_clip(path, 8, decoder="opencv")
    assert record.decoder == "opencv" and barcodes(theirs) == barcodes(ours)
    assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < 3  # two YUV->RGB converters


def test_resizing_while_converting_matches_the_preprocessing(clips):
    from fan_edge.data.transforms import resize_short

    path = clips["h264 B-frames, keyframe every 8"]
    full, _ = read_clip(path, 4)
    small, _ = read_clip(path, 4, short_side=32)
    assert small.shape == (4, 32, 48, 3)
    assert np.array_equal(small, resize_short(full, 32))


def test_folder_of_frames(tmp_path):
    import cv2

    from fan_edge.runtime.video.clips import barcode_frame, texture

    tex = texture(96 + 3 * 20, 64)
    for i in range(20):
        cv2.imwrite(str(tmp_path / f"img_{i:05d}.png"), barcode_frame(i, 96, 64, tex)[..., ::-1])
    frames, record = read_clip(tmp_path, 4)
    assert record.decoder == "folder" and barcodes(frames) == record.indices == [2, 7, 12, 17]
    assert record.decoded == 4


@pytest.mark.parametrize(
    "kind,message",
    [
        ("missing", "no such video file"),
        ("empty", "cannot decode"),
        ("random", "cannot decode"),
        ("text", "cannot decode"),
        ("one_frame", "only 1 frame"),
        ("audio_only", "cannot decode|no video stream"),
    ],
)
def test_bad_inputs_are_one_line_errors_without_ffmpeg_noise(kind, message, tmp_path):
    path = tmp_path / ("bad.mp4" if kind != "audio_only" else "bad.m4a")
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    elif kind == "text":
        path.write_text("just some notes, not a video\n")
    elif kind == "one_frame":
        write_clip(path, 1, 32, 32)
    elif kind == "audio_only":
        import av

        with av.open(str(path), "w", format="mp4") as out:
            stream = out.add_stream("aac", rate=8000)
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 8000, 0
            out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    with pytest.raises(FanEdgeError, match=message):
        read_clip(path, 4)
    # in a fresh process, so that nothing printed before is counted: stderr is one line
    code = f"from fan_edge.runtime.video import read_clip; read_clip({str(path)!r}, 4)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    tail = proc.stderr.strip().splitlines()[-1]
    assert "FanEdgeError" in tail and all(
        line.startswith(("Traceback", "  ", "fan_edge.errors.FanEdgeError"))
        for line in proc.stderr.strip().splitlines()
    ), proc.stderr  # a traceback of ours, and no FFmpeg or OpenCV log lines
