"""The producer's side of a run's batt code: discover, bundle, store, sign; and stop on a worker's refusal.

For ``-b PATH.py`` the batt is imported once in the spawned import-check child (:mod:`producer.local`),
which reports the modules it imported from the batt's own directory tree. Those files, the batt file
and the files of each ``--batt-include`` glob become the run's bundle (:mod:`batt_tasks.bundle`), read
once, now: the run scores that snapshot however the files change later. The child then imports the
bundle itself (so a bundle that lacks a file fails here, before any sample runs), and local mode keeps
scoring with it. In distributed mode the packed bundle is stored in the result backend under its id
(only if absent, expiring with the results, its expiry refreshed when a run reuses it), and every
sample message carries the bundle id and entry file, signed (:mod:`batt_tasks.signing`).

For ``-b package.module`` nothing is shipped; the message carries the hash of the module's source as
the producer sees it, and a worker with another copy refuses the sample.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from batt_tasks import signing
from batt_tasks.bundle import Bundle, BundleError, pack, read_files
from batt_tasks.config import Settings
from batt_tasks.loader import BattLoadError, bundle_cache, bundle_limits, is_path, module_hash
from batt_tasks.sample import REJECTED, bundle_key, carried_result
from producer.errors import UsageError
from producer.local import LocalRunner

CODE_OPTION = "batt_code"  # the run option (and plan field) holding the code spec of the run


class BattRejected(Exception):
    """A worker refused or could not load the run's batt; the message names the worker, the cause and the fix."""


def include_files(root: Path, patterns: Sequence[str]) -> list[str]:
    """Relative paths of the files the ``--batt-include`` globs match under ``root`` (a directory: all its files)."""
    names: set[str] = set()
    real_root = root.resolve()
    for pattern in patterns:
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise UsageError(f"--batt-include {pattern!r} must be a glob relative to the batt's directory {root}")
        matched = sorted(root.glob(pattern))
        if not matched:
            raise UsageError(f"--batt-include {pattern!r} matches no file under {root}; fix the pattern")
        for path in matched:
            paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            for p in paths:
                if "__pycache__" in p.parts:
                    continue
                if not p.resolve().is_relative_to(real_root):
                    raise UsageError(
                        f"--batt-include {pattern!r}: {p} links outside the batt's directory {root}; "
                        "copy the file into it instead"
                    )
                names.add(p.relative_to(root).as_posix())
    return sorted(names)


def build_bundle(batt_path: Path, modules: Sequence[str], includes: Sequence[str], conf: Settings) -> Bundle:
    """The bundle of a batt file: itself, the modules it imported from its directory tree, and the includes."""
    root = batt_path.parent
    names = {batt_path.name}
    real_root = root.resolve()
    for file in modules:
        path = Path(os.path.abspath(file))
        if path.is_relative_to(root) and path.is_file():  # as imported (a symlinked sibling keeps its name)
            names.add(path.relative_to(root).as_posix())
        elif path.resolve().is_relative_to(real_root):  # the batt's directory reached through a link
            names.add(path.resolve().relative_to(real_root).as_posix())
    names.update(include_files(root, includes))
    try:
        return Bundle.of(read_files(root, sorted(names)), bundle_limits(conf))
    except BundleError as exc:
        raise UsageError(f"-b {batt_path}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"-b {batt_path}: cannot read {exc.filename} ({exc.strerror})") from None


def store_bundle(app: Any, bundle: Bundle, expires: int) -> bool:
    """Store the packed bundle under its id unless it is there (then refresh its expiry); True when stored now."""
    client = app.backend.client
    key = bundle_key(bundle.id)
    if client.set(key, pack(bundle), nx=True, ex=expires):
        return True
    client.expire(key, expires)
    return False


def _fetch_stored(app: Any, bid: str, expires: int) -> bytes | None:
    client = app.backend.client
    blob = client.get(bundle_key(bid))
    if blob is not None:
        client.expire(bundle_key(bid), expires)
    return blob


def sign_messages(messages: Sequence[dict[str, Any]], spec: str | Mapping[str, Any], keys: signing.Keys | None) -> None:
    """Put the code spec in every message and, for the cluster, its signature."""
    for m in messages:
        m["batt"] = spec
        if keys is not None:
            m["sig"] = signing.sign(m, keys)


def prepare_batt(
    options: dict[str, Any],
    messages: Sequence[dict[str, Any]],
    mode: str,
    includes: Sequence[str],
    log_path: str | Path | None,
    conf: Settings,
    plan: Any = None,
) -> LocalRunner:
    """Make the run's batt ready: the import check, the bundle (stored for the cluster), signed messages.

    Returns the import-check child with the run's code loaded (local mode scores with it). A batt that
    cannot be imported, or a bundle that cannot be built or read back, is an error before any sample runs.
    """
    ref = options["batt"]
    spec: dict[str, Any] | None = options.get(CODE_OPTION)
    app = None
    if mode == "distributed":
        from batt_tasks.celery import app
    if spec is not None:  # a resumed run scores the code it was submitted with
        if spec.get("bundle"):
            _reuse_bundle(app, spec, conf, ref, getattr(plan, "run_id", None))
        runner = LocalRunner.acquire(spec, log_path, conf.max_result_bytes)
        runner.start()
        if app is not None and plan is not None:
            forget_refusals(app, plan.task_ids.values())
    elif is_path(ref):
        runner = LocalRunner.acquire(ref, log_path, conf.max_result_bytes)
        runner.start()
        try:
            bundle = build_bundle(Path(ref), runner.modules, includes, conf)
            bundle_cache(conf).put(bundle)
            spec = {"bundle": bundle.id, "entry": Path(ref).name}
            runner.switch(spec)
            if app is not None:
                store_bundle(app, bundle, conf.result_expires)
        except BaseException:
            runner.close()
            raise
    else:
        if includes:
            raise UsageError(f"--batt-include applies to a batt file (-b PATH.py), not to the module {ref!r}")
        runner = LocalRunner.acquire(ref, log_path, conf.max_result_bytes)
        runner.start()
        try:
            spec = {"module": ref, "hash": module_hash(ref)}
        except BattLoadError:
            runner.close()
            raise
    options[CODE_OPTION] = spec
    keys = None
    if mode == "distributed":
        try:
            keys = signing.resolve_keys(conf)
        except signing.SigningError as exc:
            runner.close()
            raise UsageError(str(exc)) from None
    sign_messages(messages, spec, keys)
    return runner


def _reuse_bundle(app: Any, spec: Mapping[str, Any], conf: Settings, ref: str, run_id: str | None) -> None:
    """A resumed run's bundle, ready where the run needs it: in this host's cache (read back from the backend
    when evicted here) and, for the cluster, in the backend (stored again from this host's cache when it
    expired there; expiry refreshed). Gone from both: a one-line :class:`UsageError` naming what is missing."""
    bid, entry = str(spec["bundle"]), str(spec.get("entry"))
    cache = bundle_cache(conf)
    blob = None if app is None else _fetch_stored(app, bid, conf.result_expires)
    if blob is not None:
        try:
            cache.ensure(bid, lambda: blob)
        except BundleError as exc:
            raise UsageError(f"the run's batt {exc}") from None
        return
    cached = cache.read(bid)
    if cached is not None:
        if app is not None:
            store_bundle(app, cached, conf.result_expires)  # expired in the backend: the workers fetch it there
        return
    where = (
        "nor in the result backend (expired after BATT_RESULT_EXPIRES, or another BATT_RESULT_BACKEND)"
        if app is not None
        else "the only place a local run keeps it"
    )
    raise UsageError(
        f"--resume {run_id or ''}: the run's batt bundle {bid[:12]} ({entry}) is gone: not in the bundle cache "
        f"{cache.root} (evicted past BATT_BUNDLE_CACHE_MB, or another BATT_BUNDLE_CACHE), {where}; its code cannot "
        f"be scored again — start a new run from the batt file (batt-submit -b {ref} …), or point "
        "BATT_BUNDLE_CACHE at the cache that holds it"
    )


def forget_refusals(app: Any, task_ids: Iterable[str]) -> list[str]:
    """Delete the stored results that are workers' refusals of the batt, so ``--resume`` submits those samples
    again (after the cause was fixed) instead of collecting the refusals."""
    from producer.resume import backend_metas

    gone = []
    for i, meta in backend_metas(app, task_ids).items():
        result = (meta or {}).get("result")
        result = carried_result(result) or result  # stored as FAILURE, carrying the sample's result
        if isinstance(result, dict) and result.get(REJECTED):
            gone.append(i)
    for i in gone:
        app.backend.forget(i)
    return gone


def stop_on_rejection(results: Iterator[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Pass sample results on until one says a worker refused the batt; then raise :class:`BattRejected`."""
    for result in results:
        if result.get(REJECTED):
            raise BattRejected(result["error"])
        yield result
