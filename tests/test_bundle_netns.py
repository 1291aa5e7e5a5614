"""Multi-host: a batt that exists only on the producer's host is scored by a worker on another host.

Three network namespaces (``tests/netns.py``): the broker, the producer's host and the worker's host. The
worker also gets a filesystem view of its own: it runs in a private mount namespace where the producer's
batt directory is covered by an empty tmpfs, from another working directory, with its own bundle cache.
The producer's batt directory is deleted right after the samples are submitted, and every sample is
still scored, exactly as ``--local`` scores it.

Needs root; skipped with the reason elsewhere, but with ``CI=true`` as root it fails instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import netns
import pytest
from bundle_support import same_results, write_batt
from redis_proc import host_redis_argv, wait_for
from workers import ROOT, Worker, batt_env, run_submit, submit_cmd

pytestmark = [pytest.mark.integration, pytest.mark.netns]

PORT = 16379  # inside the broker's own namespace: never the machine's Redis
KEY = "netns-signing-key-0123456789abcdef"
IDS = ["007bbfb7", "017c7c7b", "025d127b", "045e512c"]
HIDE = 'mount -t tmpfs tmpfs "$0" && cd "$1" && shift && exec "$@"'


@pytest.fixture
def net() -> Iterator[netns.Network]:
    reason = netns.netns_unavailable_reason()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true" and os.geteuid() == 0:
            pytest.fail(f"CI runs as root, so the multi-host bundle test must run, but: {reason}")
        pytest.skip(f"multi-host bundle test needs network namespaces: {reason}")
    netns.reap_stale()
    with netns.Network(subnet="10.213.11.0/24") as network:
        yield network


def elsewhere(hidden: Path, cwd: Path, argv: list[str]) -> list[str]:
    """``argv`` in a private mount namespace where ``hidden`` is an empty tmpfs, started in ``cwd``."""
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", HIDE, str(hidden), str(cwd), *argv]


def test_batt_only_on_the_producer_host_is_scored_by_a_worker_elsewhere(net: netns.Network, tmp_path: Path) -> None:
    net.add_host("broker", aliases=("redis",))
    net.add_host("producer")
    net.add_host("workerhost")
    net.popen("broker", host_redis_argv(PORT, tmp_path / "redis"))
    ping = f"import redis; redis.Redis(host='redis', port={PORT}, socket_timeout=2).ping()"
    wait_for(lambda: net.run("producer", [sys.executable, "-c", ping], timeout=10).returncode == 0, 30, what="redis")

    home = tmp_path / "producer-home"  # everything of the producer's host, hidden from the worker
    batt = write_batt(home / "batts", "flip", "netns", dsl="transpose")
    markers, worker_cwd = tmp_path / "markers", tmp_path / "worker-cwd"
    markers.mkdir()
    worker_cwd.mkdir()
    url = f"redis://redis:{PORT}"
    worker = Worker(
        batt_env(
            url,
            BATT_SIGNING_KEY=KEY,
            BATT_BUNDLE_CACHE=str(tmp_path / "worker-cache"),
            BATT_TEST_MARKER_DIR=str(markers),
        ),
        concurrency=2,
        name="remote",
    )
    worker.args = net.command("workerhost", elsewhere(home, worker_cwd, worker.args))
    probe = net.run("workerhost", elsewhere(home, worker_cwd, ["ls", "-A", str(home)]), timeout=20)
    assert probe.returncode == 0 and probe.stdout.strip() == "", "the worker's view must not show the batt"

    local = run_submit(
        batt_env(url, BATT_SIGNING_KEY=KEY), "-i", *IDS, "-b", str(batt), "--local", "-q", "--out", str(tmp_path / "l")
    )
    assert local.returncode == 0, local.stderr
    producer_env = batt_env(url, BATT_SIGNING_KEY=KEY, BATT_BUNDLE_CACHE=str(home / "cache"))
    argv = submit_cmd("-i", *IDS, "-b", str(batt), "-q", "--require-broker", "--out", str(tmp_path / "d"))
    try:
        worker.start()
        run = net.popen("producer", argv, env=producer_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(lambda: " received" in worker.text() or run.poll() is not None, 120, what="a sample at the worker")
        shutil.rmtree(home)  # the batt, its siblings and the producer's cache are gone
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err.decode() + worker.text()[-3000:]
    finally:
        worker.kill()
    assert not home.exists()
    same_results(tmp_path / "d", tmp_path / "l")
    assert (markers / "netns").exists(), "the batt was not imported on the worker"
    assert "rejected" not in worker.text()
