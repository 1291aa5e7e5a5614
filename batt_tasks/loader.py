"""The batt loader: turn a batt reference into the module's ``batt`` function, once per process.

A reference is an importable module name (``batt_tasks.battery``, ``mypkg.batt``) or a path to a
``.py`` file; for a file, its directory goes on ``sys.path`` so the module's sibling imports work,
as they do for tokpidjin's generated modules. Loaded functions are cached per process, keyed by the
reference and the file's modification time and size, so a worker imports a batt once, not once per
sample, and picks up a file that was rewritten.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise BattLoadError(f"batt file {path} does not exist; pass -b an existing .py file or a module name")
    folder = str(path.parent)
    if folder not in sys.path:
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


def _import(ref: str) -> Any:
    try:
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
    fn = getattr(module, "batt", None)
    if fn is None:
        raise BattLoadError(f"batt module {ref!r} defines no function batt(task_id, S, I, C, log_path); add one")
    if not callable(fn):
        raise BattLoadError(f"batt module {ref!r}: 'batt' is {type(fn).__name__}, not a function; make it one")
    _cache[ref] = (_stamp(getattr(module, "__file__", None)), fn)
    return fn
