"""What batt bundles cost: per run (building, storing, importing the bundle) and per sample (sign, verify, lookup).

A generated batt the size of a real one — a ~6,000-line ``mybatt.py`` in tokpidjin's style that does
``from dsl import *``, ``from constants import *`` and ``import safe_dsl`` beside 5 sibling modules — is
written to a temporary directory. Measured, as medians over ``--repeats`` rounds, each with a fresh
bundle cache and fresh source files (so every import compiles, as a new search iteration does):

- ``import check (before)``: the spawned import-check child importing the batt from its directory, which
  every run did before bundles existed;
- ``prepare_batt (now)``: the whole per-run step of a run today — that import, building the bundle from
  the modules it reported, writing it to the local cache, the child importing the bundle's copy, and
  signing every message — so ``added`` = now − before is what bundling adds to a run's start;
- its parts in-process: build (read + SHA-256), pack (tar + gzip), store (``SET NX`` to a real
  redis-server started for the bench), and a worker's first fetch (unpack, verify, write to its cache);
- per sample: HMAC signing on the producer, verification and the bundle-cache hit on the worker.

Run: ``python -m bench.bundle [--repeats 5] [--samples 20000]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LINES = 6000


def write_generated_batt(root: Path, salt: str) -> Path:
    """A ~6,000-line batt plus 5 siblings (dsl, constants, safe_dsl, arc_types, utils) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "arc_types.py").write_text(f"# {salt}\nGrid = tuple\nCells = frozenset\n")
    (root / "constants.py").write_text(f"# {salt}\n" + "".join(f"C{i} = {i}\n" for i in range(200)))
    (root / "utils.py").write_text(f"# {salt}\ndef first(x):\n    return next(iter(x))\n")
    dsl = [f"# {salt}", "from arc_types import *", "from utils import first", ""]
    for i in range(300):
        dsl += [f"def f{i}(g):", f"    return tuple(tuple((v + {i}) % 10 for v in row) for row in g)", ""]
    (root / "dsl.py").write_text("\n".join(dsl))
    (root / "safe_dsl.py").write_text(
        f"# {salt}\nimport dsl\n\n\ndef safe(fn, *a):\n    try:\n        return fn(*a)\n"
        "    except (TypeError, ValueError, IndexError):\n        return None\n"
    )
    body = [f"# {salt}", "from dsl import *", "from constants import *", "import safe_dsl", "", ""]
    body += ["def batt(task_id, S, I, C, log_path):", "    o = []", "    s = []"]
    n = 0
    while len(body) < LINES - 2:
        body += [
            "    try:",
            f"        t{n} = f{n % 300}(I)",
            "    except (TypeError, ValueError):",
            f"        t{n} = None",
            f"    o.append(({n}, False, 'cand_{n}', t{n}))",
        ]
        n += 1
    body += ["    return o, s", ""]
    batt = root / "mybatt.py"
    batt.write_text("\n".join(body))
    return batt


def _ms(xs: list[float]) -> float:
    return round(statistics.median(xs) * 1000, 2)


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def run(repeats: int, samples: int) -> list[tuple[str, str]]:
    """Measure; return ``(what, figure)`` rows."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from redis_proc import RedisServer

    from batt_tasks import signing
    from batt_tasks.bundle import BundleCache, pack
    from batt_tasks.config import settings
    from batt_tasks.loader import load_code
    from batt_tasks.sample import bundle_key
    from producer.bundling import build_bundle, prepare_batt
    from producer.data import load_tasks
    from producer.local import LocalRunner
    from producer.plan import sample_messages

    tasks = load_tasks("arc-agi-1", "train")
    ids = sorted(tasks)[:100]
    rows: dict[str, list[float]] = {}
    server = RedisServer().start()
    # the bench's own redis-server (never the machine's): prepare_batt stores the bundle there
    os.environ["BATT_BROKER_URL"] = server.url + "/0"
    os.environ["BATT_RESULT_BACKEND"] = server.url + "/1"
    os.environ["BATT_SIGNING_KEY"] = "bench-signing-key-0123456789abcdef"
    try:
        import redis

        client = redis.Redis.from_url(server.url + "/1")
        with tempfile.TemporaryDirectory(prefix="batt-bench-bundle-") as tmp:
            base = Path(tmp)
            for r in range(repeats):
                os.environ["BATT_BUNDLE_CACHE"] = str(base / f"cache-before-{r}")
                conf = settings()
                before = write_generated_batt(base / f"before-{r}", f"before {r}")
                t, runner = _timed(LocalRunner, str(before), None, conf.max_result_bytes)
                t_start, _ = _timed(runner.start)
                runner.close()
                rows.setdefault("import check (before)", []).append(t + t_start)

                os.environ["BATT_BUNDLE_CACHE"] = str(base / f"cache-now-{r}")
                conf = settings()
                batt = write_generated_batt(base / f"now-{r}", f"now {r}")
                messages = sample_messages("bench", tasks, ids, str(batt), 20.0)
                options = {"batt": str(batt)}
                t, runner = _timed(prepare_batt, options, messages, "distributed", [], None, conf)
                runner.close()
                rows.setdefault("prepare_batt (now)", []).append(t)
                rows.setdefault("added to a run's start", []).append(t - rows["import check (before)"][-1])

                modules = [str(p) for p in batt.parent.glob("*.py") if p.name != batt.name]
                t, bundle = _timed(build_bundle, batt, modules, [], conf)
                rows.setdefault("build (read + SHA-256)", []).append(t)
                t, blob = _timed(lambda b=bundle: pack(b))
                rows.setdefault("pack (tar + gzip)", []).append(t)
                t, _ = _timed(lambda b=bundle, x=blob: client.set(bundle_key(b.id), x, nx=True, ex=86400))
                rows.setdefault("store (SET NX to Redis)", []).append(t)
                worker_cache = BundleCache(base / f"worker-{r}", 1 << 30)
                t, _ = _timed(lambda b=bundle, c=worker_cache: c.ensure(b.id, lambda: client.get(bundle_key(b.id))))
                rows.setdefault("worker's first fetch (GET, unpack, verify, write)", []).append(t)
            size = (bundle.size, len(blob), len(bundle.files), len(batt.read_text().splitlines()))

            # per sample: the producer signs each message; a worker verifies it and finds the code by bundle id
            keys = signing.resolve_keys(settings())
            spec = options["batt_code"]
            msgs = sample_messages("bench", tasks, ids, str(batt), 20.0)
            msgs = (msgs * (samples // len(msgs) + 1))[:samples]
            for m in msgs:
                m["batt"] = spec
            t_sign, _ = _timed(lambda: [signing.sign(m, keys) for m in msgs])
            for m in msgs:
                m["sig"] = signing.sign(m, keys)
            load_code(spec)  # the first call imports; every later one is the cache hit a sample pays
            t_verify, _ = _timed(lambda: [signing.verify(m, keys) for m in msgs])
            t_hit, _ = _timed(lambda: [load_code(m["batt"]) for m in msgs])
    finally:
        server.cleanup()
    out = [(k, f"{_ms(v)} ms") for k, v in rows.items()]
    out.append(
        (
            "bundle size",
            f"{size[2]} files, {size[3]} lines in the batt, {size[0] / 1024:.0f} KB, packed {size[1] / 1024:.0f} KB",
        )
    )
    out += [
        ("per sample: sign (producer)", f"{t_sign / samples * 1e6:.1f} µs"),
        ("per sample: verify (worker)", f"{t_verify / samples * 1e6:.1f} µs"),
        ("per sample: code lookup by bundle id (worker)", f"{t_hit / samples * 1e6:.1f} µs"),
        ("per sample: total", f"{(t_sign + t_verify + t_hit) / samples * 1e3:.4f} ms"),
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bundle", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="rounds of the per-run measurements (median)")
    p.add_argument("--samples", type=int, default=20000, help="messages for the per-sample measurements")
    args = p.parse_args(argv)
    rows = run(args.repeats, args.samples)
    print(f"| step ({args.repeats} rounds, medians) | time |\n|---|--:|")
    for what, figure in rows:
        print(f"| {what} | {figure} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
