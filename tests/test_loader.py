"""The batt loader: module names and .py paths, the per-process cache, and every load error."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from batt_tasks.loader import DEFAULT_BATT, BattLoadError, is_path, load_batt, resolve
from batt_tasks.scoring import score_sample

BATTS = Path(__file__).resolve().parent / "batts"
GRID = ((1, 2, 3), (4, 5, 6))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_is_path_and_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not is_path("batt_tasks.battery")
    assert is_path("batt.py") and is_path("dir/batt") and is_path("./x")
    monkeypatch.chdir(BATTS.parent)
    assert resolve("batts/raises.py") == str(BATTS / "raises.py")
    assert resolve("batt_tasks.battery") == "batt_tasks.battery"


def test_default_battery_loads_and_is_cached() -> None:
    fn = load_batt()
    assert callable(fn)
    assert load_batt(DEFAULT_BATT) is fn
    o, s = fn("t", ((GRID, GRID),), GRID, None, None)
    assert isinstance(o, list) and isinstance(s, list)


def test_load_by_path_from_any_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BATTS)
    fn = load_batt("raises.py")
    assert load_batt(str(BATTS / "raises.py")) is fn  # the same file by another name: one cache entry
    with pytest.raises(ValueError, match="boom on purpose"):
        fn("boom1", (), GRID, None, None)
    assert fn("fine", (), GRID, None, None) == ([(1, False, "identity", GRID)], [])


def test_tokpidjin_style_module_with_sibling_import() -> None:
    fn = load_batt(str(BATTS / "tokpidjin_style.py"))
    o, s = fn("t", ((GRID, GRID),), GRID, None, None)
    assert [cid for _, _, cid, _ in o] == ["cand_identity", "cand_flip", "cand_shatter", "cand_rot"]
    assert [n for n, _, _, _ in o] == [1, 2, 3, 4]
    assert o[1][3] == ((3, 2, 1), (6, 5, 4)) and o[2][3] is None
    assert s == []
    result = score_sample(fn, "t", ((GRID, GRID),), GRID, ((3, 2, 1), (6, 5, 4)), None, kind="test")
    assert result["status"] == "ok" and result["matched"] == ["cand_flip"]
    assert ["cand_flip", "cell_diff", 1000] in result["differ"]
    assert ["None", "overshoot", 1000] in result["differ"]
    assert ["cand_rot", "undershoot", 0] in result["differ"]


def test_rewritten_file_is_reloaded(tmp_path: Path) -> None:
    path = write(tmp_path / "changing_batt.py", "def batt(task_id, S, I, C, log_path):\n    return [], []\n")
    first = load_batt(str(path))
    assert load_batt(str(path)) is first
    write(path, "def batt(task_id, S, I, C, log_path):\n    return [(1, False, 'new', I)], []\n")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a different stamp even on coarse clocks
    second = load_batt(str(path))
    assert second is not first
    assert second("t", (), GRID, None, None) == ([(1, False, "new", GRID)], [])


def test_module_not_found() -> None:
    with pytest.raises(BattLoadError, match=r"batt module 'no_such_batt_module_xyz' not found"):
        load_batt("no_such_batt_module_xyz")
    with pytest.raises(BattLoadError, match=r"'batt_tasks\.no_such_submodule' not found"):
        load_batt("batt_tasks.no_such_submodule")


def test_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(BattLoadError, match=r"does not exist"):
        load_batt(str(tmp_path / "missing.py"))


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "broken_syntax_batt.py", "def batt(task_id, S, I, C, log_path):\n    return (o, s\n")
    with pytest.raises(BattLoadError) as info:
        load_batt(str(path))
    message = str(info.value)
    assert "syntax error" in message and f"{path}:" in message
    assert "\n" not in message


def test_syntax_error_in_a_module_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "broken_syntax_module_xyz.py", "def batt(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pattern = r"'broken_syntax_module_xyz' has a syntax error at .*broken_syntax_module_xyz\.py:1"
    with pytest.raises(BattLoadError, match=pattern):
        load_batt("broken_syntax_module_xyz")


def test_module_without_batt_function() -> None:
    with pytest.raises(BattLoadError, match=r"defines no function batt\(task_id, S, I, C, log_path\)"):
        load_batt(str(BATTS / "no_batt.py"))


def test_batt_that_is_not_callable(tmp_path: Path) -> None:
    path = write(tmp_path / "batt_is_int.py", "batt = 42\n")
    with pytest.raises(BattLoadError, match=r"'batt' is int, not a function"):
        load_batt(str(path))


def test_module_that_raises_on_import() -> None:
    with pytest.raises(BattLoadError, match=r"failed to import: RuntimeError: import_fails refuses to be imported"):
        load_batt(str(BATTS / "import_fails.py"))
    assert "import_fails" not in sys.modules  # no half-imported module left behind


def test_module_with_a_missing_dependency() -> None:
    with pytest.raises(BattLoadError) as info:
        load_batt(str(BATTS / "missing_dep.py"))
    message = str(info.value)
    assert "failed to import: ModuleNotFoundError" in message
    assert "batt_queue_dependency_that_is_not_installed" in message and "install what it needs" in message
