"""Shared fixtures: a private redis-server per test session or test, and environment for workers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from redis_proc import RedisServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server on a free port for one test (AOF on, so it can be restarted)."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def shared_redis() -> Iterator[RedisServer]:
    """One redis-server for a whole session, for tests that only need a broker (use distinct db numbers)."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


def batt_env(redis_url: str, db: int = 0, **extra: str) -> dict[str, str]:
    """The environment for a worker or producer talking to ``redis_url`` (broker db ``db``, backend ``db+1``)."""
    env = dict(os.environ)
    env.update(
        BATT_BROKER_URL=f"{redis_url}/{db}",
        BATT_RESULT_BACKEND=f"{redis_url}/{db + 1}",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env
