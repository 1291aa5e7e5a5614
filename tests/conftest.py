"""Shared fixtures: a private redis-server per test session or test, and environment for workers."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from redis_proc import RedisServer  # noqa: E402
from workers import ROOT, batt_env  # noqa: E402, F401 - re-exported for tests


@pytest.fixture(autouse=True, scope="session")
def _never_the_machines_redis() -> Iterator[None]:
    """Point every test (and every subprocess it starts) at a port where nothing listens, unless the test
    sets its own broker: no test may reach the machine's Redis on 6379 by falling back to the default."""
    from redis_proc import free_port

    dead = f"redis://127.0.0.1:{free_port()}"
    names = ("BATT_BROKER_URL", "BATT_RESULT_BACKEND", "BATT_BUNDLE_CACHE", "XDG_CONFIG_HOME")
    saved = {k: os.environ.get(k) for k in names}
    os.environ["BATT_BROKER_URL"] = dead + "/0"
    os.environ["BATT_RESULT_BACKEND"] = dead + "/1"
    os.environ.setdefault("BATT_BROKER_CHECK_TIMEOUT", "0.5")
    # Bundles and the per-user signing key of this session's producers and workers stay in a private directory
    # (never the user's own ~/.cache or ~/.config).
    private = Path(tempfile.mkdtemp(prefix="batt-tests-"))
    os.environ["BATT_BUNDLE_CACHE"] = str(private / "bundles")
    os.environ["XDG_CONFIG_HOME"] = str(private / "config")
    try:
        yield
    finally:
        shutil.rmtree(private, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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
