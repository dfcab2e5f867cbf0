"""Sampling, the synthetic benchmark, and both on-disk dataset formats with real files."""

import csv

import cv2
import numpy as np
import pytest
import torch

from fan_edge import FanEdgeError
from fan_edge.data.datasets import ClipDataset, FrameFolderList, VideoCSV, open_source
from fan_edge.data.export import write_synthetic
from fan_edge.data.sampling import segment_indices
from fan_edge.data.synthetic import CLASSES, SyntheticActions, SyntheticPoses
from fan_edge.data.video import count_frames, read_video_frames, write_video


@pytest.mark.parametrize("length", [1, 3, 7, 8, 16, 40, 301])
@pytest.mark.parametrize("n", [1, 4, 8, 16])
def test_segment_indices_are_ordered_and_in_range(length, n):
    rng = np.random.default_rng(0)
    for mode in ("center", "random"):
        idx = segment_indices(length, n, mode=mode, rng=rng)
        assert idx.shape == (n,) and idx.dtype == np.int64
        assert idx.min() >= 0 and idx.max() < length
        assert np.all(np.diff(idx) >= 0)
        if length >= n:  # one distinct frame per segment
            assert len(set(idx.tolist())) == n


def test_center_sampling_takes_segment_middles():
    assert segment_indices(16, 4, mode="center").tolist() == [2, 6, 10, 14]
    assert segment_indices(2, 4, mode="center").tolist() == [0, 0, 1, 1]


def test_random_sampling_stays_inside_each_segment():
    rng = np.random.default_rng(1)
    for _ in range(50):
        idx = segment_indices(40, 4, mode="random", rng=rng)
        assert all(10 * k <= i < 10 * (k + 1) for k, i in enumerate(idx))


def test_sampling_rejects_empty_videos():
    with pytest.raises(FanEdgeError):
        segment_indices(0, 4)


def test_synthetic_dataset_is_deterministic():
    a, b = SyntheticActions(6, seed=3), SyntheticActions(6, seed=3)
    for i in range(6):
        assert np.array_equal(a.render(i), b.render(i))
        assert a.label(i) == b.label(i) and a.num_frames(i) == len(a.render(i))
    c = SyntheticActions(6, seed=4)
    assert not np.array_equal(a.render(0)[:5], c.render(0)[:5])


def test_synthetic_dataset_is_roughly_balanced_over_all_classes():
    d = SyntheticActions(630, seed=0)
    counts = np.bincount([d.label(i) for i in range(630)], minlength=len(CLASSES))
    assert len(counts) == len(CLASSES) and counts.min() > 10


def test_pose_task_relabels_the_same_clips_by_direction():
    actions, poses = (
        SyntheticActions(40, seed=3),
        open_source("synthetic-poses", seed=3, num_videos=40),
    )
    assert isinstance(poses, SyntheticPoses) and len(poses.classes) == 8
    assert np.array_equal(poses.render(5), actions.render(5))  # same pixels, other labels
    labels = [poses.label(i) for i in range(40)]
    assert labels == [SyntheticPoses(40, seed=3).label(i) for i in range(40)]
    assert set(labels) <= set(range(8)) and len(set(labels)) >= 6
    assert labels != [actions.label(i) % 8 for i in range(40)]


def test_clip_dataset_returns_one_clip_per_frame_count(tiny_cfg):
    src = SyntheticActions(4, seed=0)
    ds = ClipDataset(src, (4, 8, 16), 32, tiny_cfg.mean, tiny_cfg.std, train=True)
    clips, label = ds[0]
    assert [c.shape for c in clips] == [(n, 3, 32, 32) for n in (4, 8, 16)]
    assert all(c.dtype == torch.float32 for c in clips)
    assert label == src.label(0)
    # Training sampling is reproducible for a (seed, epoch) and changes with the epoch.
    again = ClipDataset(src, (4, 8, 16), 32, tiny_cfg.mean, tiny_cfg.std, train=True)
    assert all(torch.equal(a, b) for a, b in zip(clips, again[0][0], strict=True))
    again.set_epoch(1)
    assert not torch.equal(clips[2], again[0][0][2])


def test_video_csv_reads_real_files(tmp_path, tiny_cfg):
    csv_path = write_synthetic(tmp_path / "synth", num_videos=3, seed=0)
    src = VideoCSV(csv_path)
    truth = SyntheticActions(3, seed=0)
    assert src.classes == list(CLASSES)  # from classes.txt, not the 3 rows
    for i in range(3):
        assert src.classes[src.label(i)] == CLASSES[truth.label(i)]
        assert src.num_frames(i) == truth.num_frames(i)
    frames = src.read(0, np.array([0, 5, 5]))
    assert frames.shape == (3, 32, 32, 3)
    # Lossy codec, but clearly the same picture.
    assert np.abs(frames[0].astype(int) - truth.render(0)[0]).mean() < 20
    clips, _ = ClipDataset(src, (4,), 32, tiny_cfg.mean, tiny_cfg.std)[2]
    assert clips[0].shape == (4, 3, 32, 32)


def test_frame_folder_list_reads_real_images(tmp_path):
    clip = SyntheticActions(1, seed=0).render(0)
    folder = tmp_path / "frames" / "vid0"
    folder.mkdir(parents=True)
    for i, f in enumerate(clip):
        cv2.imwrite(str(folder / f"img_{i + 1:05d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    (tmp_path / "train.txt").write_text(f"frames/vid0 {len(clip)} 3\n")
    src = open_source(str(tmp_path / "train.txt"))
    assert isinstance(src, FrameFolderList)
    assert src.label(0) == 3 and src.num_frames(0) == len(clip)
    assert np.array_equal(src.read(0, np.array([0, 2])), clip[[0, 2]])  # PNG is lossless


def test_frame_folder_with_missing_images_is_a_clear_error(tmp_path):
    (tmp_path / "v").mkdir()
    cv2.imwrite(str(tmp_path / "v" / "img_00001.jpg"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "l.txt").write_text("v 10 0\n")
    with pytest.raises(FanEdgeError, match="only 1 images"):
        FrameFolderList(tmp_path / "l.txt").num_frames(0)


def test_frame_count_comes_from_decoding_not_the_header(tmp_path):
    path = tmp_path / "v.mp4"
    frames = SyntheticActions(1, seed=0).render(0)
    write_video(path, frames)
    assert count_frames(path) == len(frames)
    assert read_video_frames(path, np.array([len(frames) - 1])).shape == (1, 32, 32, 3)


def test_unreadable_files_give_clear_errors(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(FanEdgeError, match="cannot decode|no decodable"):
        count_frames(bad)
    with pytest.raises(FanEdgeError, match="no such"):
        count_frames(tmp_path / "missing.mp4")
    bad_csv = tmp_path / "a.csv"
    with bad_csv.open("w", newline="") as f:
        csv.writer(f).writerow(["file", "class"])
    with pytest.raises(FanEdgeError, match="path,label"):
        VideoCSV(bad_csv)
    with pytest.raises(FanEdgeError, match="cannot tell the format"):
        open_source("data.json")
