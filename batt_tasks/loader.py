"""The batt loader: turn a batt reference into the module's ``batt`` function, once per process.

A reference is an importable module name (``batt_tasks.battery``, ``mypkg.batt``) or a path to a
``.py`` file; for a file, its directory goes on ``sys.path`` so the module's sibling imports work,
as they do for tokpidjin's generated modules. Loaded functions are cached per process, keyed by the
reference and the file's modification time and size, so a worker imports a batt once, not once per
sample, and picks up a file that was rewritten.

Sample messages name their batt by a *code spec* (:func:`load_code`): a bundle (``{"bundle": id,
"entry": "mybatt.py"}``, see :mod:`batt_tasks.bundle`) or an installed module with the hash of its
source (``{"module": name, "hash": sha256}``). A bundle's code is cached by bundle id, never by path
or time stamp, so a changed sibling module can never be scored with old code; before another bundle
runs, the modules loaded from the previous one leave ``sys.modules`` (and come back when it runs
again), so two bundles that both hold a ``dsl.py`` each see their own.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batt_tasks.bundle import MB, BundleCache, BundleError, Limits, bundle_id
from batt_tasks.config import Settings, settings

BattFn = Callable[..., Any]

DEFAULT_BATT = "batt_tasks.battery"


class BattLoadError(Exception):
    """The batt cannot be loaded; the message names the reference and the fix."""


_cache: dict[str, tuple[tuple[int, int], BattFn]] = {}


def is_path(ref: str) -> bool:
    """Whether ``ref`` names a file rather than a module."""
    return ref.endswith(".py") or os.sep in ref or (os.altsep is not None and os.altsep in ref)


def resolve(ref: str) -> str:
    """A reference that means the same thing from any working directory (files become absolute paths)."""
    return str(Path(ref).expanduser().resolve()) if is_path(ref) else ref


def _stamp(path: str | None) -> tuple[int, int]:
    if not path:
        return (0, 0)
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


def _import_file(path: Path, on_path: bool = True) -> Any:
    if not path.is_file():
        raise BattLoadError(f"batt file {path} does not exist; pass -b an existing .py file or a module name")
    folder = str(path.parent)
    if on_path and folder not in sys.path:
        sys.path.insert(0, folder)
    name = path.stem if path.name != "__init__.py" else path.parent.name
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) != str(path):
        # A batt file named like a module already loaded (random.py, json.py, another batt's name)
        # must not replace it: give it a name of its own.
        name = f"_batt_{name}_{abs(hash(str(path))):x}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BattLoadError(f"batt file {path} cannot be imported; pass -b a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _import(ref: str, load: Callable[[], Any] | None = None) -> Any:
    try:
        if load is not None:
            return load()
        if is_path(ref):
            return _import_file(Path(ref).expanduser().resolve())
        if ref in sys.modules:
            return importlib.reload(sys.modules[ref])
        return importlib.import_module(ref)
    except BattLoadError:
        raise
    except SyntaxError as exc:
        raise BattLoadError(
            f"batt {ref!r} has a syntax error at {exc.filename}:{exc.lineno}: {exc.msg}; fix the module"
        ) from None
    except ModuleNotFoundError as exc:
        if exc.name and (ref == exc.name or ref.startswith(exc.name + ".")):
            raise BattLoadError(
                f"batt module {ref!r} not found; pass -b an importable module name or a path to a .py file"
            ) from None
        raise BattLoadError(
            f"batt {ref!r} failed to import: {type(exc).__name__}: {exc}; install what it needs"
        ) from None
    except Exception as exc:  # noqa: BLE001 - whatever the module raises at import is the user's to fix
        raise BattLoadError(f"batt {ref!r} failed to import: {type(exc).__name__}: {exc}; fix the module") from None


def load_batt(ref: str = DEFAULT_BATT) -> BattFn:
    """Return the ``batt`` function of the module ``ref`` names, importing it only when new or changed."""
    ref = resolve(ref)
    cached = _cache.get(ref)
    if cached is not None:
        path = ref if is_path(ref) else getattr(sys.modules.get(ref), "__file__", None)
        if cached[0] == _stamp(path):
            return cached[1]
    module = _import(ref)
    fn = _batt_of(module, ref)
    _cache[ref] = (_stamp(getattr(module, "__file__", None)), fn)
    return fn


def _batt_of(module: Any, ref: str) -> BattFn:
    fn = getattr(module, "batt", None)
    if fn is None:
        raise BattLoadError(f"batt module {ref!r} defines no function batt(task_id, S, I, C, log_path); add one")
    if not callable(fn):
        raise BattLoadError(f"batt module {ref!r}: 'batt' is {type(fn).__name__}, not a function; make it one")
    return fn


# ----------------------------------------------------------------------------------------- code specs


def bundle_limits(conf: Settings) -> Limits:
    """The bundle caps the settings name (BATT_MAX_BUNDLE_MB, BATT_MAX_BUNDLE_FILES)."""
    return Limits(conf.max_bundle_mb * MB, conf.max_bundle_files)


def bundle_cache(conf: Settings | None = None) -> BundleCache:
    """This host's on-disk bundle cache (BATT_BUNDLE_CACHE, BATT_BUNDLE_CACHE_MB)."""
    conf = conf or settings()
    return BundleCache(conf.bundle_cache, conf.bundle_cache_mb * MB, bundle_limits(conf))


def module_files(name: str) -> dict[str, bytes]:
    """The source files of the installed module ``name``: its file, or every ``.py`` file of its package."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        raise BattLoadError(
            f"batt module {name!r} is not installed here; install the same version as the producer's, "
            "or pass -b a .py file so it is shipped in a bundle"
        )
    if not spec.submodule_search_locations:
        return {os.path.basename(spec.origin): Path(spec.origin).read_bytes()}
    files: dict[str, bytes] = {}
    for location in spec.submodule_search_locations:
        base = Path(location)
        for path in sorted(base.rglob("*.py")):
            if "__pycache__" not in path.parts:
                files[path.relative_to(base).as_posix()] = path.read_bytes()
    return files


_module_hashes: dict[str, str] = {}


def module_hash(name: str) -> str:
    """SHA-256 of an installed module's source as this process sees it (computed once per process)."""
    found = _module_hashes.get(name)
    if found is None:
        found = _module_hashes[name] = bundle_id(module_files(name))
    return found


@dataclass
class _LoadedBundle:
    root: str
    fns: dict[str, BattFn] = field(default_factory=dict)
    modules: dict[str, Any] = field(default_factory=dict)  # name → module loaded from this bundle


_bundles: OrderedDict[str, _LoadedBundle] = OrderedDict()
_active: list[str | None] = [None]
MAX_BUNDLES_IN_MEMORY = 8  # older bundles' code is dropped from a process (a new bundle per search iteration)


def _under(path: str | None, root: str) -> bool:
    return bool(path) and path.startswith(root + os.sep)


def _stash(keep: str | None) -> None:
    """Move the modules of every bundle but ``keep`` out of ``sys.modules`` (each bundle keeps its own), and
    their directories off ``sys.path``."""
    roots = {b: lb.root for b, lb in _bundles.items() if b != keep}
    if not roots:
        return
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        for other, root in roots.items():
            if _under(file, root):
                _bundles[other].modules[name] = module
                del sys.modules[name]
                break
    sys.path[:] = [p for p in sys.path if p not in roots.values()]


def forget_path(ref: str) -> None:
    """Before a batt file is imported afresh: drop its cached function, and step out of every bundle so that
    none of their modules stands in for a module of the file's directory."""
    _cache.pop(resolve(ref), None)
    _stash(None)
    _active[0] = None


def _activate(bid: str, loaded: _LoadedBundle) -> None:
    """Make ``bid`` the bundle whose modules ``sys.modules`` and ``sys.path`` show."""
    if _active[0] == bid:
        return
    _stash(bid)
    if loaded.root in sys.path:
        sys.path.remove(loaded.root)
    sys.path.insert(0, loaded.root)
    sys.modules.update(loaded.modules)
    _active[0] = bid


def _forget_old_bundles() -> None:
    while len(_bundles) > MAX_BUNDLES_IN_MEMORY:
        for bid in _bundles:
            if bid != _active[0]:
                del _bundles[bid]
                break


def load_bundle(
    bid: str, entry: str, fetch: Callable[[], bytes | None] | None = None, conf: Settings | None = None
) -> BattFn:
    """The ``batt`` function of ``entry`` in bundle ``bid``, imported once per process per bundle.

    The bundle comes from this host's disk cache, or ``fetch()`` (its packed bytes) the first time.
    """
    ref = f"{entry} (bundle {bid[:12]})"
    loaded = _bundles.get(bid)
    if loaded is not None and entry in loaded.fns:
        _activate(bid, loaded)
        _bundles.move_to_end(bid)
        return loaded.fns[entry]
    cache = bundle_cache(conf)
    try:
        root = cache.ensure(bid, fetch or (lambda: None))
    except OSError as exc:
        raise BundleError(
            f"bundle {bid[:12]} cannot be written to the cache {cache.root} ({exc.strerror}); "
            "point BATT_BUNDLE_CACHE at a writable directory"
        ) from None
    if loaded is None:
        loaded = _bundles[bid] = _LoadedBundle(str(root))
    _activate(bid, loaded)
    before = set(sys.modules)
    module = _import(ref, lambda: _import_file(root / entry, on_path=False))
    for name in set(sys.modules) - before:
        if _under(getattr(sys.modules[name], "__file__", None), loaded.root):
            loaded.modules[name] = sys.modules[name]
    fn = loaded.fns[entry] = _batt_of(module, ref)
    _forget_old_bundles()
    return fn


def load_installed(name: str, expected_hash: str | None) -> BattFn:
    """The ``batt`` function of an installed module, refused when its source differs from the producer's."""
    if expected_hash is not None:
        mine = module_hash(name)
        if mine != expected_hash:
            raise BattLoadError(
                f"batt module {name!r} differs from the producer's copy (producer's source hash "
                f"{expected_hash[:12]}, this worker's {mine[:12]}); install the same version on producer and workers"
            )
    return load_batt(name)


def load_code(
    spec: str | Mapping[str, Any], fetch: Callable[[str], bytes | None] | None = None, conf: Settings | None = None
) -> BattFn:
    """The ``batt`` function a message's code spec names (a bundle, an installed module, or a plain reference)."""
    if isinstance(spec, str):
        return load_batt(spec)
    if spec.get("bundle"):
        bid = str(spec["bundle"])
        return load_bundle(bid, str(spec["entry"]), (lambda: fetch(bid)) if fetch else None, conf)
    return load_installed(str(spec["module"]), spec.get("hash"))


def describe(spec: str | Mapping[str, Any]) -> str:
    """A short name of a code spec for messages: ``bundle mybatt.py (3f9a1c…)`` or ``module x``."""
    if isinstance(spec, str):
        return repr(spec)
    if spec.get("bundle"):
        return f"bundle {spec.get('entry')} ({str(spec['bundle'])[:12]})"
    return f"module {spec.get('module')}"
