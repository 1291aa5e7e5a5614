"""Which tasks a run scores, with the meaning of the tool batt-queue replaces.

``-c N`` (N > 0): the first N ids in sorted order after skipping ``-s START``; ``-c -N``: N ids drawn
at random, reproducible with ``--seed``; ``-c 0``: all; ``-i ID ...``: exactly those ids.
"""

from __future__ import annotations

import difflib
import random
import secrets
from collections.abc import Collection, Sequence

from producer.errors import UsageError


def new_seed() -> int:
    """A fresh seed, printed by the producer so the run can be repeated."""
    return secrets.randbelow(2**31)


def select(
    known: Collection[str],
    count: int = 0,
    start: int = 0,
    seed: int | None = None,
    ids: Sequence[str] | None = None,
) -> list[str]:
    """Return the selected task ids (sorted), or raise :class:`UsageError` for an impossible selection."""
    ordered = sorted(known)
    if ids:
        unknown = [i for i in ids if i not in known]
        if unknown:
            close = difflib.get_close_matches(unknown[0], ordered, n=3, cutoff=0.5) or difflib.get_close_matches(
                unknown[0], ordered, n=3, cutoff=0.0
            )
            hint = f"closest known: {', '.join(close)}"
            raise UsageError(f"-i: unknown task id {unknown[0]!r} ({hint})")
        return sorted(dict.fromkeys(ids))
    if start < 0:
        raise UsageError(f"-s {start}: the start must be 0 or more")
    if count > 0:
        if start + count > len(ordered):
            raise UsageError(
                f"-c {count} -s {start}: the data set has only {len(ordered)} tasks; "
                "lower -c or -s (or use -c 0 for all)"
            )
        return ordered[start : start + count]
    if count < 0:
        n = -count
        if n > len(ordered):
            raise UsageError(
                f"-c {count}: cannot draw {n} tasks from a data set of {len(ordered)}; use -c -{len(ordered)} or fewer"
            )
        if seed is None:
            raise ValueError("a random draw needs a seed")
        return sorted(random.Random(seed).sample(ordered, n))
    if start and start >= len(ordered):
        raise UsageError(f"-s {start}: the data set has only {len(ordered)} tasks, none left after skipping {start}")
    return ordered[start:]
