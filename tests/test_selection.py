"""Task selection: -c N after -s START, -c -N random with --seed, -c 0 all, -i exact ids."""

from __future__ import annotations

import pytest

from producer.errors import UsageError
from producer.selection import new_seed, select

KNOWN = [f"{n:08x}" for n in range(0, 200, 7)]  # 29 ids, given unsorted below
SHUFFLED = list(reversed(KNOWN))


def test_count_takes_the_first_n_sorted_ids() -> None:
    assert select(SHUFFLED, 3) == KNOWN[:3]


def test_count_after_start() -> None:
    assert select(SHUFFLED, 4, start=5) == KNOWN[5:9]
    assert select(SHUFFLED, 1, start=len(KNOWN) - 1) == KNOWN[-1:]


def test_zero_means_all() -> None:
    assert select(SHUFFLED, 0) == KNOWN
    assert select(set(KNOWN)) == KNOWN


def test_count_larger_than_data_set() -> None:
    with pytest.raises(UsageError, match=r"-c 30 -s 0: the data set has only 29 tasks"):
        select(KNOWN, 30)
    with pytest.raises(UsageError, match=r"only 29 tasks"):
        select(KNOWN, 5, start=25)


def test_negative_start() -> None:
    with pytest.raises(UsageError, match=r"-s -1"):
        select(KNOWN, 2, start=-1)


def test_random_draw_is_reproducible_with_a_seed() -> None:
    first = select(SHUFFLED, -5, seed=1234)
    assert len(first) == 5 and len(set(first)) == 5
    assert set(first) <= set(KNOWN)
    assert first == sorted(first)
    assert select(KNOWN, -5, seed=1234) == first  # the input order does not matter
    draws = {tuple(select(KNOWN, -5, seed=s)) for s in range(20)}
    assert len(draws) > 1  # different seeds draw different sets


def test_random_draw_of_everything_is_everything() -> None:
    assert select(KNOWN, -len(KNOWN), seed=3) == KNOWN


def test_random_draw_larger_than_data_set() -> None:
    with pytest.raises(UsageError, match=r"cannot draw 30 tasks from a data set of 29"):
        select(KNOWN, -30, seed=1)


def test_random_draw_without_seed_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="seed"):
        select(KNOWN, -2)


def test_new_seed_is_a_usable_int() -> None:
    seed = new_seed()
    assert isinstance(seed, int) and 0 <= seed < 2**31
    assert len(select(KNOWN, -3, seed=seed)) == 3


def test_ids_are_exactly_those() -> None:
    wanted = [KNOWN[7], KNOWN[2], KNOWN[7]]
    assert select(KNOWN, ids=wanted) == sorted({KNOWN[2], KNOWN[7]})


def test_ids_win_over_count() -> None:
    assert select(KNOWN, count=-3, start=2, seed=None, ids=[KNOWN[4]]) == [KNOWN[4]]


ARC_LIKE = ["007bbfb7", "00d62c1b", "017c7c7b", "025d127b", "045e512c", "0520fde7", "05269061", "05f2a901"]


def test_unknown_id_lists_the_closest_known_ids() -> None:
    near = "007bbfb8"  # one character off 007bbfb7
    with pytest.raises(UsageError) as info:
        select(ARC_LIKE, ids=["0520fde7", near])
    message = str(info.value)
    assert repr(near) in message and "closest known: 007bbfb7" in message
    assert "\n" not in message


def test_unknown_id_far_from_everything_still_lists_ids() -> None:
    with pytest.raises(UsageError, match="closest known: "):
        select(KNOWN, ids=["zz"])


def test_all_after_start() -> None:
    assert select(KNOWN, 0, start=27) == KNOWN[27:]
    with pytest.raises(UsageError, match=r"-s 29: the data set has only 29 tasks"):
        select(KNOWN, 0, start=29)
