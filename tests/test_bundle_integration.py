"""Batt bundles end to end: a real redis-server, one long-lived prefork worker (-c 1), real batt-submit runs.

The worker has its own bundle cache (as on another host), so every bundle it scores is fetched from the
result backend. Each scenario compares the distributed results with ``--local`` on the same batt.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from bundle_support import TRANSFORMS, one_error_line, same_results, submission, write_batt
from redis_proc import RedisServer, wait_for
from workers import ROOT, Worker, batt_env, run_submit, submit_cmd

from batt_tasks.bundle import Bundle, pack
from batt_tasks.sample import bundle_key

pytestmark = pytest.mark.integration

IDS = ["007bbfb7", "017c7c7b", "025d127b"]
KEY = "test-signing-key-0123456789abcdef"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    base = tmp_path_factory.mktemp("cluster")
    markers = base / "markers"
    markers.mkdir()
    worker_pkgs = base / "worker-site"
    worker_pkgs.mkdir()
    (worker_pkgs / "instbatt_shared.py").write_text(
        "def batt(task_id, S, I, C, log_path):\n    return [(1, False, 'old', I)], []\n"
    )
    server = RedisServer().start()
    env = batt_env(
        server.url,
        BATT_SIGNING_KEY=KEY,
        BATT_BUNDLE_CACHE=str(base / "worker-cache"),
        BATT_TEST_MARKER_DIR=str(markers),
        PYTHONPATH=os.pathsep.join(p for p in (str(worker_pkgs), os.environ.get("PYTHONPATH", "")) if p),
    )
    worker = Worker(env, concurrency=1, name="wb").start()
    try:
        yield {"server": server, "worker": worker, "markers": markers, "base": base}
    finally:
        worker.stop()
        server.cleanup()


def producer_env(cluster: dict[str, object], **extra: str) -> dict[str, str]:
    server = cluster["server"]
    assert isinstance(server, RedisServer)
    return batt_env(server.url, **{"BATT_SIGNING_KEY": KEY, **extra})


def both_modes(cluster: dict[str, object], batt: Path, out: Path, *extra: str) -> None:
    """Score ``batt`` on the cluster and locally; the results must be the same."""
    env = producer_env(cluster)
    dist = run_submit(env, "-i", *IDS, "-b", str(batt), "--require-broker", "-q", "--out", str(out / "d"), *extra)
    assert dist.returncode == 0, dist.stderr
    local = run_submit(env, "-i", *IDS, "-b", str(batt), "--local", "-q", "--out", str(out / "l"), *extra)
    assert local.returncode == 0, local.stderr
    same_results(out / "d", out / "l")


def test_new_directory_with_changed_sibling_scores_the_new_code(cluster, tmp_path):
    first = write_batt(tmp_path / "iter1", "flip", "iter1")
    both_modes(cluster, first, tmp_path / "run1")
    second = write_batt(tmp_path / "iter2", "flipud", "iter2")  # same module names, changed helper.py
    both_modes(cluster, second, tmp_path / "run2")
    assert submission(tmp_path / "run1" / "d") != submission(tmp_path / "run2" / "d")


def test_sibling_edited_in_place_scores_the_new_code(cluster, tmp_path):
    batt = write_batt(tmp_path / "batt", "flip", "inplace")
    both_modes(cluster, batt, tmp_path / "run1")
    (tmp_path / "batt" / "helper.py").write_text("def transform(I):\n    return tuple(zip(*I))\n")
    both_modes(cluster, batt, tmp_path / "run2")
    assert submission(tmp_path / "run1" / "d") != submission(tmp_path / "run2" / "d")


def test_local_run_scores_its_snapshot_while_the_files_change(cluster, tmp_path):
    batt = write_batt(tmp_path / "batt", "flip", "snapshot")
    env = producer_env(cluster, BATT_TEST_SLEEP="0.3")
    before = run_submit(env, "-i", *IDS, "-b", str(batt), "--local", "-q", "--out", str(tmp_path / "before"))
    assert before.returncode == 0, before.stderr
    out = tmp_path / "during"
    proc = subprocess.Popen(
        submit_cmd("-i", *IDS, "-b", str(batt), "--local", "-q", "--out", str(out)), env=env, cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    results = lambda: [p for p in out.glob("*/results.jsonl") if p.read_text().strip()]  # noqa: E731
    wait_for(lambda: results() or proc.poll() is not None, 120, what="the first task of the local run")
    assert proc.poll() is None, "the run ended before the files changed: the test proved nothing"
    (tmp_path / "batt" / "helper.py").write_text(TRANSFORMS["transpose"])  # rewritten mid-run...
    batt.unlink()  # ...and the batt itself gone
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    same_results(out, tmp_path / "before")


def _received_runs(worker: Worker) -> list[str]:
    """Run ids of the samples the worker received, in order, with repeats collapsed."""
    order: list[str] = []
    for run_id in re.findall(r"Task batt\.score_sample\[(\d{8}-\d{6}-[0-9a-f]{6})\.", worker.text()):
        if not order or order[-1] != run_id:
            order.append(run_id)
    return order


def test_two_bundles_with_their_own_dsl_interleaved_on_one_worker(cluster, tmp_path):
    worker = cluster["worker"]
    assert isinstance(worker, Worker)
    a = write_batt(tmp_path / "a", "identity", "inter-a", dsl="flip")
    b = write_batt(tmp_path / "b", "identity", "inter-b", dsl="flipud")
    env = producer_env(cluster, BATT_TEST_SLEEP="0")
    seen = len(_received_runs(worker))
    procs = []
    # A, then B while A runs, then A again while B runs: the one pool process goes A → B → A
    for n, batt in enumerate((a, b, a)):
        argv = submit_cmd("-i", *IDS, "-b", str(batt), "--require-broker", "-q", "--out", str(tmp_path / f"d{n}"))
        procs.append(subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        wait_for(lambda n=n: len(_received_runs(worker)) >= seen + n + 1, 120, what=f"run {n} to reach the worker")
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    assert len(_received_runs(worker)[seen:]) >= 3, "the worker did not switch between the bundles"
    for batt, name in ((a, "la"), (b, "lb")):
        local = run_submit(env, "-i", *IDS, "-b", str(batt), "--local", "-q", "--out", str(tmp_path / name))
        assert local.returncode == 0, local.stderr
    same_results(tmp_path / "d0", tmp_path / "la")
    same_results(tmp_path / "d1", tmp_path / "lb")
    same_results(tmp_path / "d2", tmp_path / "la")
    assert submission(tmp_path / "d0") != submission(tmp_path / "d1")


def test_tampered_bundle_in_the_backend_runs_no_code(cluster, tmp_path):
    batt = write_batt(tmp_path / "batt", "flip", "tampered-genuine")
    files = {"mybatt.py": batt.read_bytes(), "helper.py": (tmp_path / "batt" / "helper.py").read_bytes()}
    genuine = Bundle.of(files)
    evil = dict(files, **{"mybatt.py": files["mybatt.py"].replace(b"tampered-genuine", b"tampered-evil")})
    import redis

    server = cluster["server"]
    assert isinstance(server, RedisServer)
    # someone with write access to Redis put other bytes under the bundle's id before the run stored it
    redis.Redis.from_url(f"{server.url}/1").set(bundle_key(genuine.id), pack(Bundle(evil, genuine.id)))
    done = run_submit(
        producer_env(cluster), "-i", *IDS, "-b", str(batt), "--require-broker", "-q", "--out", str(tmp_path)
    )
    line = one_error_line(done)
    assert "rejected the batt bundle mybatt.py" in line and "does not match its id" in line, line
    assert re.search(r"worker wb-\w+@", line), line
    markers = cluster["markers"]
    assert isinstance(markers, Path)
    assert not (markers / "tampered-genuine").exists() and not (markers / "tampered-evil").exists()


def test_bad_signature_runs_no_code(cluster, tmp_path):
    batt = write_batt(tmp_path / "batt", "flip", "badsig")
    env = producer_env(cluster, BATT_SIGNING_KEY="another-key-that-the-workers-lack")
    done = run_submit(env, "-i", *IDS, "-b", str(batt), "--require-broker", "-q", "--out", str(tmp_path / "out"))
    line = one_error_line(done)
    assert "signature mismatch — give producer and workers the same BATT_SIGNING_KEY" in line, line
    markers = cluster["markers"]
    assert isinstance(markers, Path)
    assert not (markers / "badsig").exists()
    # nothing was scored: no task line, and the run directory says so
    out_dirs = list((tmp_path / "out").iterdir())
    assert len(out_dirs) == 1 and (out_dirs[0] / "results.jsonl").read_text() == ""
    # with the workers' key, --resume scores every sample (the refusals are not collected again)
    again = run_submit(producer_env(cluster), "--resume", out_dirs[0].name, "-q")
    assert again.returncode == 0, again.stderr
    assert (markers / "badsig").exists(), "the resumed run ran the batt on the worker"
    local = run_submit(
        producer_env(cluster), "-i", *IDS, "-b", str(batt), "--local", "-q", "--out", str(tmp_path / "l")
    )
    assert local.returncode == 0, local.stderr
    same_results(tmp_path / "out", tmp_path / "l")


def test_worker_with_another_copy_of_an_installed_module(cluster, tmp_path):
    mine = tmp_path / "producer-site"
    mine.mkdir()
    (mine / "instbatt_shared.py").write_text(
        "def batt(task_id, S, I, C, log_path):\n    return [(1, False, 'new', I)], []\n"
    )
    env = producer_env(cluster, PYTHONPATH=str(mine))
    done = run_submit(env, "-i", *IDS, "-b", "instbatt_shared", "--require-broker", "-q", "--out", str(tmp_path / "o"))
    line = one_error_line(done)
    assert "module 'instbatt_shared' differs from the producer's copy" in line, line
    from batt_tasks.bundle import bundle_id

    producer_hash = bundle_id({"instbatt_shared.py": (mine / "instbatt_shared.py").read_bytes()})
    worker_file = cluster["base"] / "worker-site" / "instbatt_shared.py"  # type: ignore[operator]
    worker_hash = bundle_id({"instbatt_shared.py": worker_file.read_bytes()})
    assert producer_hash[:12] in line and worker_hash[:12] in line, line
