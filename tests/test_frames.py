import pytest

from fan_edge import FanEdgeError, select_subnetwork
from fan_edge.frames import validate_frame_set


def test_selection_table_matches_method_notes():
    # method.md: n<=5 -> 4, 6 -> 8 (tie, higher), 7..11 -> 8, 12 -> 16 (tie), n>=13 -> 16
    frames = (4, 8, 16)
    expected = {
        1: 4,
        2: 4,
        3: 4,
        4: 4,
        5: 4,
        6: 8,
        7: 8,
        8: 8,
        9: 8,
        10: 8,
        11: 8,
        12: 16,
        13: 16,
        16: 16,
        20: 16,
        64: 16,
    }
    got = {n: frames[select_subnetwork(n, frames)] for n in expected}
    assert got == expected


def test_selection_with_four_counts():
    frames = (4, 8, 12, 16)
    assert [frames[select_subnetwork(n, frames)] for n in (6, 10, 14)] == [8, 12, 16]


@pytest.mark.parametrize("bad", [[], [0, 4], [4, 4]])
def test_bad_frame_sets_are_rejected(bad):
    with pytest.raises(FanEdgeError):
        validate_frame_set(bad)


def test_zero_frames_is_an_error():
    with pytest.raises(FanEdgeError, match="at least 1"):
        select_subnetwork(0, (4, 8))
