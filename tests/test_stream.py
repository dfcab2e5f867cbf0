"""`fan-edge stream`: windows from files and live sources, the frame-count controller, the
capture ring under slow inference, clean stops, and one-line errors for bad sources."""

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fan_edge.data.sampling import segment_indices
from fan_edge.errors import FanEdgeError
from fan_edge.runtime import Predictor
from fan_edge.runtime.stream import Controller
from fan_edge.runtime.stream.capture import FrameRing
from fan_edge.runtime.video import make_plan, open_video
from fan_edge.runtime.video.clips import write_clip
from tests.conftest import run_without_torch

FPS = 30


@pytest.fixture(scope="module")
def clip_2s(tmp_path_factory):
    """2 s at 30 fps (60 frames), small, H.264 with B-frames."""
    return write_clip(tmp_path_factory.mktemp("stream") / "two.mp4", 60, 96, 64)


def frames_of(video: Path) -> int:
    import av

    with av.open(str(video)) as c:
        return sum(1 for _ in c.decode(video=0))


# -- files ---------------------------------------------------------------------------------


def test_a_file_gives_a_result_per_stride_equal_to_run_on_the_same_window(tiny_bundle, clip_2s):
    predictor = Predictor(tiny_bundle)
    stream = predictor.stream(clip_2s, window=1.0, stride=0.25, budget="8frames")
    results = list(stream)
    # windows end at 1.0, 1.25, ..., 2.0 s: the last frame (59/30 s) lasts until 2.0 s
    assert [r.window for r in results] == [0, 1, 2, 3, 4]
    assert [r.time for r in results] == [1.0, 1.25, 1.5, 1.75, 2.0]
    assert stream.summary.stopped == "end of file"
    assert stream.summary.windows == 5 and stream.summary.frames_read == 60
    assert stream.summary.dropped_frames == 0 and stream.summary.skipped_windows == 0
    sub = predictor.bundle.subnetwork_for(8)
    with open_video(clip_2s) as video:  # what `fan-edge run` reads, for the same frames
        for r in results:
            held = [i for i in range(60) if r.start <= i / FPS < r.time]
            assert r.window_frames == len(held) == 30
            indices = held[0] + segment_indices(len(held), 8)
            raw, _ = video.read_plan(make_plan(video.index, indices), predictor.bundle.read_size)
            z = predictor.logits(predictor.preprocess(raw), sub)[0]
            p = np.exp(z - z.max())
            p /= p.sum()
            assert r.label == predictor.bundle.classes[int(np.argmax(p))]
            assert r.score == pytest.approx(float(p.max()), abs=1e-5)
            assert r.frames == 8 and r.subnetwork == 8 and "8 frames asked" in r.reason


def test_smoothing_and_threshold(tiny_bundle, clip_2s):
    results = list(Predictor(tiny_bundle).stream(clip_2s, window=1.0, stride=0.25, smooth=2))
    for a, b in zip(results, results[1:], strict=False):
        assert b.smoothed_score <= max(a.score, b.score) + 1e-6  # a mean of the last two
    quiet = list(Predictor(tiny_bundle).stream(clip_2s, window=1.0, stride=0.25, threshold=1.0))
    assert all(r.smoothed_label is None for r in quiet)  # below the threshold: no label


def test_a_low_frame_rate_serves_the_sub_network_the_window_can_fill(tiny_bundle, tmp_path):
    slow = write_clip(tmp_path / "six_fps.mp4", 18, 96, 64, fps=6)  # 3 s at 6 fps
    results = list(Predictor(tiny_bundle).stream(slow, window=1.0, stride=1.0))
    assert len(results) == 3 and all(r.window_frames == 6 for r in results)
    assert all(r.subnetwork == 4 and r.frames == 4 for r in results)  # 16 asked, 6 there
    assert "window holds 6 frames, fewer than 16" in results[0].reason


def test_a_file_shorter_than_the_window_is_one_window(tiny_bundle, clip_2s):
    results = list(Predictor(tiny_bundle).stream(clip_2s, window=5.0))
    assert len(results) == 1 and results[0].window_frames == 60


# -- the controller ------------------------------------------------------------------------

COSTS = {4: 1.0, 8: 2.0, 16: 4.0}


def drive(controller, latency_of, windows: int) -> list[int]:
    """Run `windows` windows on a scripted device; the sub-network of each window."""
    ran = []
    for i in range(windows):
        f = controller.frames
        ran.append(f)
        controller.observe(f, latency_of(i, f))
    return ran


def test_controller_steps_down_when_windows_run_over_and_up_with_headroom():
    c = Controller(100.0, COSTS, start=16)
    load = {range(0, 10): 1.0, range(10, 30): 3.0, range(30, 60): 1.0}

    def latency(i, f):  # 20 ms per frame at no load, three times that when loaded
        factor = next(v for r, v in load.items() if i in r)
        return 5.0 * f * factor

    ran = drive(c, latency, 60)
    assert ran[:10] == [16] * 10  # 80 ms fits
    assert ran[10] == 16  # 240 ms: over by half again: steps down after this one window
    assert set(ran[11:30]) == {4}  # 16 would be 240, 8 120: only 4 (60 ms) fits
    assert ran[-1] == 16  # back up once the load is gone
    ups = [i for i in range(31, 60) if ran[i] > ran[i - 1]]
    assert len(ups) == 2 and ups[1] - ups[0] >= 5  # one level at a time, with patience


def test_controller_needs_two_windows_over_when_only_slightly_over():
    c = Controller(100.0, COSTS, start=8)
    d1 = c.observe(8, 110.0)
    assert d1.frames == 8 and "over 100 ms (1 of the last 1)" in d1.reason
    d2 = c.observe(8, 105.0)
    assert d2.frames == 4 and "stepped down from 8 to 4" in d2.reason
    c2 = Controller(100.0, COSTS, start=8)  # over, under, over: two of the last three
    assert [c2.observe(8, x).frames for x in (110.0, 90.0, 110.0)] == [8, 8, 4]
    c3 = Controller(100.0, COSTS, start=8)  # over once in a while: kept
    assert {c3.observe(8, x).frames for x in (110.0, 90.0, 90.0, 110.0, 90.0, 90.0)} == {8}


def test_controller_does_not_flap_at_a_boundary():
    """8 frames take 110 ms (over 100) and 4 take 38 (8 looks like ~76, fits the 80 ms
    headroom): each step up fails. The patience doubles, so steps become rare."""
    c = Controller(100.0, COSTS, start=4)
    ran = drive(c, lambda i, f: {4: 38.0, 8: 110.0, 16: 300.0}[f], 300)
    switches = [i for i in range(1, 300) if ran[i] != ran[i - 1]]
    assert 4 <= len(switches) <= 16
    gaps = np.diff([i for i in switches if ran[i] == 8])
    assert all(b >= a for a, b in zip(gaps, gaps[1:], strict=False))  # tries grow rarer
    assert ran.count(4) > 0.9 * len(ran)


def test_controller_follows_windows_too_short_for_its_sub_network():
    """The frame rate dropped: windows hold 8 frames while the controller was at 16. The 8
    that ran is the level now, and steps down like any other when it runs over."""
    c = Controller(100.0, COSTS, start=16)
    assert c.observe(8, 90.0).frames == 8
    assert c.observe(8, 200.0).frames == 4  # far over: down at once
    assert c.observe(16, 10.0).frames == 4  # not ours to run: no verdict


@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_controller_does_not_flap_with_noisy_latencies(noise):
    """The boundary case with each window +-30% (this machine's spread): as rare as without."""
    rng = np.random.default_rng(0)
    c = Controller(100.0, COSTS, start=4)
    base = {4: 38.0, 8: 110.0, 16: 300.0}
    ran = drive(c, lambda i, f: base[f] * (1 + rng.uniform(-noise, noise)), 600)
    ups = [i for i in range(1, 600) if ran[i] > ran[i - 1]]
    assert len(ups) <= 12


# -- the ring ------------------------------------------------------------------------------


def test_the_ring_overwrites_instead_of_waiting_and_counts_what_nobody_saw():
    ring = FrameRing(10)
    frame = np.zeros((4, 4, 3), np.uint8)
    t0 = time.perf_counter()
    for i in range(100):
        assert ring.put(frame + i, i / 30)
    assert time.perf_counter() - t0 < 1.0  # never waited for a reader
    assert ring.dropped_by_buffer == 90
    w = ring.window(90 / 30, 100 / 30, lambda n: 4, closed_at=0.0)
    assert w.available == 10 and list(w.frames[:, 0, 0, 0]) == [91, 93, 96, 98]
    for i in range(100, 110):
        ring.put(frame, i / 30)
    assert ring.dropped_by_buffer == 90  # the 10 a window held are not dropped


def test_slow_inference_never_stalls_capture(tiny_bundle, tmp_path):
    """Inference takes longer than a window: windows are skipped, frames nobody classified
    are counted, and capture keeps the source's pace (every frame read, the last windows
    served come from the end of the file)."""
    video = write_clip(tmp_path / "three.mp4", 90, 96, 64)  # 3 s
    predictor = Predictor(tiny_bundle)
    fast = predictor.logits

    def slow(clip, sub):
        time.sleep(0.7)
        return fast(clip, sub)

    predictor.logits = slow
    stream = predictor.stream(video, window=0.5, stride=0.1, realtime=True)
    t0 = time.perf_counter()
    results = list(stream)
    wall = time.perf_counter() - t0
    s = stream.summary
    assert s.frames_read == 90 and s.stopped == "end of file"
    assert s.skipped_windows > 0 and s.dropped_by_buffer > 0
    assert results[-1].dropped_frames <= s.dropped_frames
    assert len(results) < 10 and results[-1].time >= 2.0  # newest windows, not a backlog
    assert wall < 8.0  # capture waiting for each of the 26 windows would take over 18 s


# -- stopping, errors ----------------------------------------------------------------------


def _ctrl_c_as_in_a_terminal() -> None:
    # A suite started in the background (`make test &`, nohup) inherits SIGINT ignored, and a
    # process that starts with SIGINT ignored rightly keeps ignoring it: give the child what
    # a terminal gives it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def fan_edge(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fan_edge.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_as_in_a_terminal,
        **kw,
    )


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_kill_stop_cleanly_with_a_summary_and_a_playable_video(
    stop, tiny_bundle, tmp_path
):
    video = write_clip(tmp_path / "ten.mp4", 300, 96, 64)  # 10 s, played in real time
    out = tmp_path / "out"
    proc = fan_edge(
        "stream", str(video), "--bundle", str(tiny_bundle), "--realtime", "--window", "1s",
        "--stride", "0.25s", "--annotate", str(out / "seen.mp4"), "--output",
        str(out / "log.jsonl"),
    )  # fmt: skip
    first = json.loads(proc.stdout.readline())  # piped: JSON Lines
    assert first["window"] == 0 and first["subnetwork"] == 16
    proc.send_signal(stop)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    summary = [line for line in stderr.splitlines() if line.startswith("interrupted:")]
    assert len(summary) == 1 and "windows" in summary[0] and "p90" in summary[0], stderr
    logged = (out / "log.jsonl").read_text().splitlines()
    assert len(logged) == 1 + len(stdout.splitlines())
    assert 0 < frames_of(out / "seen.mp4") < 300  # finished and playable, cut where stopped
    assert sorted(p.name for p in out.iterdir()) == ["log.jsonl", "seen.mp4"]  # no temp left


def test_end_of_file_finalizes_the_annotated_video(tiny_bundle, clip_2s, tmp_path, cli):
    seen = tmp_path / "seen.mp4"
    code, stdout, stderr = cli(
        "stream", clip_2s, "--bundle", tiny_bundle, "--window", "1s", "--annotate", seen
    )
    assert code == 0, stderr
    assert len(stdout.splitlines()) == 5  # windows ending at 1, 1.25, ..., 2 s
    assert stderr.startswith("end of file: 5 windows")
    # Every frame is in the video but those the summary says were left out: encoding never
    # holds capture back, so on a loaded machine it may drop (and count) a few.
    left = re.search(r"(\d+) left out while encoding was behind", stderr)
    assert 0 < frames_of(seen) == 60 - (int(left[1]) if left else 0), stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "source, message",
    [
        ("rtsp://127.0.0.1:{port}/live", "cannot connect to rtsp://127.0.0.1:{port}/live"),
        ("http://127.0.0.1:{port}/a.mp4", "connection refused"),
        ("/dev/video63", "no camera at /dev/video63"),
        ("63", "no camera at /dev/video63"),
        ("missing.mp4", "no such video file: missing.mp4"),
    ],
)
def test_unreachable_sources_are_one_line_errors(source, message, tiny_bundle, cli):
    port = free_port()
    t0 = time.perf_counter()
    code, stdout, stderr = cli("stream", source.format(port=port), "--bundle", tiny_bundle)
    assert code == 1 and stdout == ""
    assert stderr.count("\n") == 1 and message.format(port=port) in stderr
    assert time.perf_counter() - t0 < 5


def test_a_stream_that_stalls_stops_with_a_summary(tiny_bundle, tmp_path):
    """An HTTP server that sends part of a video and then nothing: the read timeout ends the
    stream with its summary and exit code 1."""
    video = write_clip(tmp_path / "served.mp4", 120, 96, 64, faststart=True)
    data = video.read_bytes()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    hold = threading.Event()

    def serve():
        conn, _ = server.accept()
        conn.recv(65536)
        head = f"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {len(data)}\r\n\r\n"
        conn.sendall(head.encode() + data[: len(data) * 3 // 4])
        hold.wait(30)  # then silence
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        proc = fan_edge(
            "stream", f"http://127.0.0.1:{port}/served.mp4", "--bundle", str(tiny_bundle),
            "--window", "1s", "--timeout", "1s",
        )  # fmt: skip
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        hold.set()
        server.close()
    assert proc.returncode == 1, stderr
    lines = stderr.splitlines()
    assert lines[0].startswith("stalled:") and lines[-1].startswith("error: ")
    assert len(stdout.splitlines()) >= 1  # the windows before the stall were classified


def test_bad_options_are_one_line_errors(tiny_bundle, clip_2s, cli):
    for args, message in [
        (["--window", "soon"], "cannot read --window 'soon'"),
        (["--stride", "-1s"], "cannot read --stride"),
        (["--budget", "fast"], "cannot read budget 'fast'"),
        (["--output", "x.csv"], "use a .jsonl file"),
        (["--annotate", "x.avi"], "use a .mp4 file"),
    ]:
        code, _, stderr = cli("stream", clip_2s, "--bundle", tiny_bundle, *args)
        assert code == 1 and message in stderr and stderr.count("\n") == 1, (args, stderr)


def test_stream_needs_no_torch(tiny_bundle, clip_2s):
    out = run_without_torch(
        f"""
from fan_edge.runtime import Predictor
results = list(Predictor({str(tiny_bundle)!r}).stream({str(clip_2s)!r}, window=1.0))
print(len(results))
"""
    )
    assert out.strip() == "5"


def test_the_api_refuses_bad_options_before_opening_anything(tiny_bundle, clip_2s):
    with pytest.raises(FanEdgeError, match="smooth must be at least 1"):
        Predictor(tiny_bundle).stream(clip_2s, smooth=0)
    with pytest.raises(FanEdgeError, match=r"threshold is a probability in \[0, 1\]"):
        Predictor(tiny_bundle).stream(clip_2s, threshold=2.0)


def test_controller_forgets_failed_steps_once_the_load_is_gone():
    """At a boundary the patience grows to 64 windows; when the load goes (the smaller
    sub-network runs clearly faster over 10 windows), it is forgotten: up within ~6 windows,
    not 64."""
    c = Controller(100.0, {4: 1.0, 8: 2.0}, start=4)
    ran = drive(c, lambda i, f: ({4: 38.0, 8: 110.0} if i < 170 else {4: 15.0, 8: 40.0})[f], 260)
    tries = [i for i in range(1, 170) if ran[i] > ran[i - 1]]
    assert tries[-1] - tries[-2] >= 64  # patience at its cap
    up = next(i for i in range(170, 260) if ran[i] == 8)
    assert up <= 170 + 10 and set(ran[up:]) == {8}


def test_the_window_defaults_to_the_length_of_the_training_clips(tmp_path):
    """Export records the median length of the training videos (from their headers); a
    stream's window defaults to it, its stride to a quarter of it."""
    from exporters import export
    from fan_edge.config import preset
    from fan_edge.train.checkpoint import save_untrained

    data = tmp_path / "data"
    for name in ("a", "b", "c"):
        write_clip(data / f"{name}.mp4", 45, 64, 48)  # 1.5 s at 30 fps
    (data / "train.csv").write_text("path,label\na.mp4,x\nb.mp4,y\nc.mp4,x\n")
    ckpt = save_untrained(
        tmp_path / "ckpt.pt",
        preset("tiny", num_classes=2),
        ["x", "y"],
        data={"train": str(data / "train.csv")},
    )
    bundle = export(ckpt, [4, 8], tmp_path / "bundle")
    predictor = Predictor(bundle)
    assert predictor.bundle.clip_seconds == 1.5
    stream = predictor.stream(data / "a.mp4")
    assert (stream.window, stream.stride) == (1.5, 0.375)
    assert len(list(stream)) == 1  # the file is one window long


def test_a_stride_longer_than_the_window_is_refused(tiny_bundle, clip_2s, cli):
    code, _, stderr = cli(
        "stream", clip_2s, "--bundle", tiny_bundle, "--window", "1s", "--stride", "2s"
    )
    assert code == 1 and "longer than the window (1 s) leaves frames unclassified" in stderr


def test_a_file_longer_than_the_ring_runs_every_window_and_loses_no_frame(tiny_bundle, tmp_path):
    """Read as fast as it decodes, capture waits for the windows (lossless), never drops."""
    video = write_clip(tmp_path / "ten.mp4", 300, 64, 48)  # 10 s: several rings long
    stream = Predictor(tiny_bundle).stream(video, window=1.0, stride=1.0)
    results = list(stream)
    assert stream._ring.capacity < 300
    assert [r.time for r in results] == [float(t) for t in range(1, 11)]
    assert all(r.window_frames == 30 for r in results)
    assert stream.summary.dropped_frames == 0 and stream.summary.skipped_windows == 0


def test_controller_steps_down_at_once_when_a_window_falls_behind_the_stride():
    """Over the budget by less than a quarter, but longer than the stride: the next window
    would wait for this one, so waiting for a second overrun would cost two."""
    patient = Controller(100.0, COSTS, start=8)
    assert patient.observe(8, 115.0).frames == 8
    behind = Controller(100.0, COSTS, start=8, stride_ms=110.0)
    d = behind.observe(8, 115.0)
    assert d.frames == 4 and "stepped down" in d.reason
    assert Controller(100.0, COSTS, start=8, stride_ms=110.0).observe(8, 105.0).frames == 8
