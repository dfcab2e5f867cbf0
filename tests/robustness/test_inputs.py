"""Bad inputs end as one line and a non-zero exit, before any work and with nothing written
(issue 13): output paths, numeric ranges, budgets, data files; plus fuzzers for the parsers."""

import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fan_edge.data.datasets import MAX_CLASSES, ClipDataset, FrameFolderList, VideoCSV
from fan_edge.data.video import read_image_frames, read_video_frames, write_video
from fan_edge.errors import FanEdgeError
from fan_edge.runtime.budget import UNITS, Budget, parse_budget

# ---- the CLI, case by case --------------------------------------------------------------
# (id, command line ({t}: a scratch folder), exit code, a word the message must hold).
# Exit code 1: our `error: ...`; 2: a usage error (an option's range); both one line.
# {t} holds: afile (a file), adir/ (an empty folder), binary.csv (random bytes),
# short.txt (a frame list claiming a 1-frame clip), bundle/latency.json/ (a folder),
# report/bn_shift.json/ (a folder), res.json/ (a folder).
RUN = "run {t}/clip.mp4 --bundle {t}/adir"
TRAIN = "train --out {t}/run --num-videos 4 --num-val 2 --epochs 1 --batch-size 2"
CASES = [
    # output paths, checked before the work
    ("eval-json-is-a-folder", "eval {t}/ck.pt --json {t}/adir", 1, "is a folder"),
    ("eval-json-under-a-file", "eval {t}/ck.pt --json {t}/afile/r.json", 1, "not a folder"),
    ("bn-shift-out-is-a-file", "analyze bn-shift {t}/ck.pt --out {t}/afile", 1, "not a folder"),
    (
        "bn-shift-out-under-a-file",
        "analyze bn-shift {t}/ck.pt --out {t}/afile/x",
        1,
        "not a folder",
    ),
    ("bn-shift-json-is-a-folder", "analyze bn-shift {t}/ck.pt --out {t}/report", 1, "is a folder"),
    ("bench-profile-is-a-folder", "bench {t}/bundle --no-decode", 1, "--no-save"),
    ("run-output-is-a-folder", RUN + " --output {t}/res.json", 1, "is a folder"),
    ("run-output-under-a-file", RUN + " --output {t}/afile/r.jsonl", 1, "not a folder"),
    ("synth-out-under-a-file", "synth {t}/afile/s --num-videos 1", 1, "not a folder"),
    ("synth-out-is-a-file", "synth {t}/afile --num-videos 1", 1, "exists"),
    (
        "synth-out-is-a-file-overwrite",
        "synth {t}/afile --num-videos 1 --overwrite",
        1,
        "--overwrite",
    ),
    ("synth-no-disk-space", "synth {t}/s --num-videos 999999 --size 1024", 1, "GB free"),
    ("synth-too-many-videos", "synth {t}/s --num-videos 1000000", 2, "--num-videos"),
    ("train-too-many-videos", TRAIN + " --num-videos 1000000000000", 2, "--num-videos"),
    ("flops-classes-huge", "flops --preset tiny --classes 1000000000000", 2, "--classes"),
    ("bench-batch-huge", "bench {t}/bundle --batch 100000", 2, "--batch"),
    # budgets and sub-network choice
    ("run-budget-inf-frames", RUN + " --budget 1e999frames", 1, "finite"),
    ("run-budget-inf-gflops", RUN + " --budget 1e999gflops", 1, "finite"),
    ("run-budget-overflows-unit", RUN + " --budget 1e308tflops", 1, "finite"),
    ("run-budget-zero", RUN + " --budget 0ms", 1, "greater than 0"),
    ("run-budget-underflows", RUN + " --budget 1e-999s", 1, "greater than 0"),
    ("run-budget-half-frame", RUN + " --budget 0.5frames", 1, "whole number"),
    ("run-budget-negative", RUN + " --budget -5ms", 1, "cannot read budget"),
    ("run-frames-and-budget", RUN + " --frames 4 --budget 8frames", 1, "choose one"),
    # numeric ranges
    ("synth-size-0", "synth {t}/s --size 0", 2, "--size"),
    ("synth-size-negative", "synth {t}/s --size -5", 2, "--size"),
    ("synth-size-1", "synth {t}/s --size 1", 2, "--size"),
    ("synth-size-100000", "synth {t}/s --size 100000", 2, "--size"),
    ("synth-seed-negative", "synth {t}/s --seed -1", 2, "--seed"),
    ("synth-seed-2**32", "synth {t}/s --seed 4294967296", 2, "--seed"),
    ("synth-num-videos-0", "synth {t}/s --num-videos 0", 2, "--num-videos"),
    ("flops-size-negative", "flops --preset tiny --size -8", 2, "--size"),
    ("flops-size-0", "flops --preset tiny --size 0", 2, "--size"),
    ("train-seed-negative", TRAIN + " --seed -1", 2, "--seed"),
    ("train-max-steps-0", TRAIN + " --max-steps 0", 2, "--max-steps"),
    ("train-epochs-0", TRAIN + " --epochs 0", 2, "--epochs"),
    ("train-workers-negative", TRAIN + " --workers -1", 2, "--workers"),
    ("train-workers-huge", TRAIN + " --workers 10000", 2, "--workers"),
    ("train-kd-gate-2", TRAIN + " --kd-gate 2", 2, "--kd-gate"),
    ("train-lambda-nan", TRAIN + " --lambda nan", 1, "--lambda"),
    ("train-lambda-negative", TRAIN + " --lambda -1", 1, "--lambda"),
    ("train-lr-inf", TRAIN + " --lr inf", 1, "--lr"),
    ("train-lr-nan", TRAIN + " --lr nan", 1, "--lr"),
    ("train-lr-0", TRAIN + " --lr 0", 1, "--lr"),
    ("train-kd-gate-nan", TRAIN + " --kd-gate nan", 2, "--kd-gate"),
    ("train-kd-warmup-negative", TRAIN + " --kd-warmup -1", 1, "--kd-warmup"),
    ("train-kd-warmup-inf", TRAIN + " --kd-warmup inf", 1, "--kd-warmup"),
    ("train-kd-after-no-room-to-switch", TRAIN + " --kd-after 0.9", 2, "--kd-after"),
    ("train-rho-nan", TRAIN + " --rho nan", 1, "--rho"),
    ("train-frames-repeated", TRAIN + " --frames 4 4", 1, "distinct"),
    ("run-top-k-0", RUN + " --top-k 0", 2, "--top-k"),
    ("run-jobs-0", RUN + " --jobs 0", 2, "--jobs"),
    ("bench-iters-0", "bench {t}/bundle --iters 0", 2, "--iters"),
    ("eval-batch-size-0", "eval {t}/ck.pt --batch-size 0", 2, "--batch-size"),
    ("bn-shift-clips-0", "analyze bn-shift {t}/ck.pt --live --clips 0", 2, "--clips"),
    (
        "bn-shift-live-repeated-frames",
        "analyze bn-shift {t}/ck.pt --live --frames 4 4 --out {t}/new",
        1,
        "distinct",
    ),
    # data files
    ("train-binary-csv", TRAIN + " --data {t}/binary.csv", 1, "not a text CSV"),
    ("train-one-frame-clip", TRAIN + " --data {t}/short.txt", 1, "at least 2 frames"),
]


def _scratch(t: Path) -> None:
    (t / "afile").write_text("mine")
    (t / "adir").mkdir()
    (t / "binary.csv").write_bytes(np.random.default_rng(0).bytes(3000) + b"\xff\xfe")
    (t / "short.txt").write_text("frames/v 1 0\n")
    (t / "bundle" / "latency.json").mkdir(parents=True)
    (t / "report" / "bn_shift.json").mkdir(parents=True)
    (t / "res.json").mkdir()


def _tree(t: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(t)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(t.rglob("*"))
    }


def assert_refused(code: int, err: str, expected: int, word: str) -> None:
    assert code == expected, err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line, both kinds
    if code == 2:  # a usage error: the option's range, and where to read more
        assert "Invalid value" in err and "--help" in err, err
    assert word in err, err


@pytest.mark.parametrize("argv,expected,word", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_in_one_line_before_any_work(cli, tmp_path, argv, expected, word):
    _scratch(tmp_path)
    before = _tree(tmp_path)
    code, _, err = cli(*argv.format(t=tmp_path).split())
    assert_refused(code, err, expected, word)
    assert _tree(tmp_path) == before  # nothing written, nothing half-made, no temporaries


@pytest.mark.parametrize(
    "what",
    ["eval-json", "eval-json-file", "run-output", "run-output-file", "bench", "synth", "bn-shift"],
)
def test_read_only_outputs_are_refused_before_any_work(cli, tmp_path, what, monkeypatch):
    ro, ro_file = tmp_path / "ro", tmp_path / "ro.json"
    ro.mkdir()
    ro_file.write_text("[]")
    argv = {
        "eval-json": f"eval {tmp_path}/ck.pt --json {ro}/r.json",
        "eval-json-file": f"eval {tmp_path}/ck.pt --json {ro_file}",
        "run-output": f"run {tmp_path}/v.mp4 --bundle {tmp_path} --output {ro}/r.json",
        "run-output-file": f"run {tmp_path}/v.mp4 --bundle {tmp_path} --output {ro_file}",
        "bench": f"bench {ro} --no-decode",
        "synth": f"synth {ro}/s --num-videos 1",
        "bn-shift": f"analyze bn-shift {tmp_path}/ck.pt --out {ro}/a",
    }[what]
    os.chmod(ro_file, 0o444)
    os.chmod(ro, 0o555)
    if os.geteuid() == 0:  # root may write anyway: the checks must still ask, and refuse
        access = os.access
        monkeypatch.setattr(
            os,
            "access",
            lambda p, mode, **kw: (
                access(p, mode, **kw)
                and not (mode & os.W_OK and Path(p).resolve() in (ro, ro_file))
            ),
        )
    before = _tree(tmp_path)
    try:
        code, _, err = cli(*argv.split())
        assert_refused(code, err, 1, "read-only" if what.endswith("-file") else "permission")
        assert _tree(tmp_path) == before
    finally:
        os.chmod(ro, 0o755)


# ---- data readers -----------------------------------------------------------------------


def test_a_one_frame_clip_is_refused_by_training_as_by_run(tmp_path):
    """The same rule and message as the runtime's reader (`run`)."""
    from fan_edge.runtime.video import read_clip

    clip = np.full((1, 32, 32, 3), 128, np.uint8)
    write_video(tmp_path / "one.mp4", clip)
    (tmp_path / "v.csv").write_text("path,label\none.mp4,0\none.mp4,1\n")
    with pytest.raises(FanEdgeError, match="one.mp4 has only 1 frame: .* at least 2 frames"):
        read_clip(tmp_path / "one.mp4", 4)
    with pytest.raises(FanEdgeError, match="one.mp4 has only 1 frame: .* at least 2 frames"):
        VideoCSV(tmp_path / "v.csv").num_frames(0)
    (tmp_path / "f" / "v").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "f" / "v" / "img_00001.png"), clip[0])
    (tmp_path / "l.txt").write_text("f/v 1 0\n")
    with pytest.raises(FanEdgeError, match="f/v has only 1 frame: .* at least 2 frames"):
        FrameFolderList(tmp_path / "l.txt")


class _Unresizing:
    """A source that reads at full size (as third-party sources may)."""

    def __init__(self, source):
        self.source, self.classes = source, source.classes

    def __len__(self):
        return len(self.source)

    def label(self, i):
        return self.source.label(i)

    def num_frames(self, i):
        return self.source.num_frames(i)

    def read(self, i, indices):
        return self.source.read(i, indices)


def test_frames_are_resized_as_read_with_the_same_preprocessing(tmp_path):
    rng = np.random.default_rng(0)
    video = np.stack(
        [
            cv2.GaussianBlur(f, (9, 9), 3)
            for f in rng.integers(0, 255, (12, 72, 100, 3), dtype=np.uint8)
        ]
    )
    write_video(tmp_path / "v.mp4", video)
    (tmp_path / "v.csv").write_text("path,label\nv.mp4,0\nv.mp4,1\n")
    (tmp_path / "f").mkdir()
    for i, f in enumerate(video):
        cv2.imwrite(str(tmp_path / "f" / f"img_{i:05d}.png"), f)
    (tmp_path / "l.txt").write_text("f 12 0\nf 12 1\n")
    idx = np.array([0, 3, 3, 11])
    assert read_video_frames(tmp_path / "v.mp4", idx, 32).shape == (4, 32, 44, 3)
    files = sorted((tmp_path / "f").iterdir())
    assert read_image_frames(files, idx, 36).shape == (4, 36, 50, 3)
    for source in (VideoCSV(tmp_path / "v.csv"), FrameFolderList(tmp_path / "l.txt")):
        for train in (True, False):
            ds = ClipDataset(source, (4, 8), 32, (0.5,) * 3, (0.2,) * 3, train=train, seed=3)
            full = ClipDataset(
                _Unresizing(source), (4, 8), 32, (0.5,) * 3, (0.2,) * 3, train=train, seed=3
            )
            for a, b in zip(ds[1][0], full[1][0], strict=True):
                assert np.array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize(
    "text,word",
    [
        ("path,label\nv.mp4,99999999999999\n", "not a class index"),
        ('path,label\nv.mp4,0\n"unclosed,0\n' + "x" * 200_000, "not a text CSV"),
    ],
    ids=["huge-label", "huge-field"],
)
def test_odd_csv_files_are_one_line_errors(tmp_path, text, word):
    (tmp_path / "a.csv").write_text(text)
    (tmp_path / "v.mp4").write_bytes(b"")
    with pytest.raises(FanEdgeError, match=word):
        VideoCSV(tmp_path / "a.csv")


def test_a_label_that_only_looks_like_a_digit_is_a_class_name(tmp_path):
    (tmp_path / "a.csv").write_text("path,label\nv.mp4,\u00b2\nw.mp4,1\n")  # int("²") fails
    for name in ("v.mp4", "w.mp4"):
        (tmp_path / name).write_bytes(b"")
    assert VideoCSV(tmp_path / "a.csv").classes == ["1", "\u00b2"]


def test_missing_videos_are_found_when_the_csv_is_read(tmp_path):
    (tmp_path / "a.csv").write_text("path,label\nv.mp4,0\nw.mp4,1\nx.mp4,1\n")
    (tmp_path / "v.mp4").write_bytes(b"")
    with pytest.raises(FanEdgeError, match=r"a.csv:3: no video .*w.mp4 \(2 of 3 listed"):
        VideoCSV(tmp_path / "a.csv")


# ---- fuzzers: every input either loads or raises the domain error -----------------------

FUZZ = settings(max_examples=200, deadline=None, database=None)  # leaves no .hypothesis/

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.text("0123456789.eE+-", max_size=12),
    st.sampled_from(["1e999", "1e-999", "0", "0.0", ".5", "5.", "1e308", "\u0663", "08"]),
)
units = st.one_of(
    st.sampled_from(list(UNITS)).map(lambda u: u.upper() if len(u) % 2 else u),
    st.text("abcdefghijklmnopqrstuvwxyzFLOPS", max_size=7),
)
budgets = st.one_of(
    st.text(max_size=20),
    st.tuples(
        st.sampled_from(["", " "]),
        numbers,
        st.sampled_from(["", " ", "\t"]),
        units,
        st.sampled_from(["", " ", "\n"]),
    ).map("".join),
)


@FUZZ
@given(budgets)
def test_parse_budget_returns_a_valid_budget_or_a_domain_error(text):
    try:
        b = parse_budget(text)
    except FanEdgeError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert isinstance(b, Budget) and b.kind in ("gflops", "latency", "frames")
    assert math.isfinite(b.value) and b.value > 0
    if b.kind == "frames":
        assert b.value >= 1 and b.value == int(b.value)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


cells = st.one_of(
    st.text(max_size=12),
    st.integers(-3, 10**25).map(str),
    st.sampled_from(["0", "1", "\u00b2", "\u0663", "", " ", "a,b", '"']),
)
csv_texts = st.one_of(
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    st.lists(st.lists(cells, min_size=1, max_size=3).map(",".join), max_size=6).map(
        lambda rows: "path,label\n" + "\n".join(rows)
    ),
)


def _write(path: Path, data: str | bytes) -> None:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    path.write_bytes(data)


@FUZZ
@given(st.one_of(st.binary(max_size=300), csv_texts), st.none() | st.binary(max_size=40))
def test_video_csv_loads_or_raises_the_domain_error(fuzz_dir, data, classes_txt):
    _write(fuzz_dir / "a.csv", data)
    (fuzz_dir / "classes.txt").unlink(missing_ok=True)
    if classes_txt is not None:
        (fuzz_dir / "classes.txt").write_bytes(classes_txt)
    try:
        src = VideoCSV(fuzz_dir / "a.csv")
    except FanEdgeError as e:
        assert str(e)
        return
    assert len(src) >= 1 and len(src.classes) <= max(MAX_CLASSES, len(src))
    assert all(0 <= src.label(i) < len(src.classes) for i in range(len(src)))


list_lines = st.lists(
    st.tuples(st.sampled_from(["v", "a/b", "../x", "\u00e9"]), cells, cells).map(" ".join)
    | st.text(max_size=20),
    max_size=6,
).map("\n".join)


@FUZZ
@given(st.one_of(st.binary(max_size=300), list_lines))
def test_frame_list_loads_or_raises_the_domain_error(fuzz_dir, data):
    _write(fuzz_dir / "l.txt", data)
    try:
        src = FrameFolderList(fuzz_dir / "l.txt")
    except FanEdgeError as e:
        assert str(e)
        return
    assert len(src) >= 1 and len(src.classes) <= MAX_CLASSES
    assert all(claimed >= 2 and 0 <= label < len(src.classes) for _, claimed, label in src.items)
