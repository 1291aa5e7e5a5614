"""Bundles, the bundle cache, signing and the loader's per-bundle code, without Celery or Redis."""

from __future__ import annotations

import gzip
import io
import multiprocessing
import os
import stat
import sys
import tarfile

import pytest
from bundle_support import write_batt

from batt_tasks import loader, signing
from batt_tasks.bundle import MB, Bundle, BundleCache, BundleError, Limits, bundle_id, check_relpath, pack, unpack
from batt_tasks.config import settings
from batt_tasks.loader import BattLoadError, load_bundle, load_code, module_hash
from producer.bundling import build_bundle, include_files
from producer.errors import UsageError

GRID = ((1, 2), (3, 4))
FILES = {"mybatt.py": b"from helper import *\n", "helper.py": b"X = 1\n", "data/table.txt": b"1 2 3\n"}


def tar_of(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    """A gzip'd tar with exactly these members (for bundles no producer would make)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(buf.getvalue())


def member(
    name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = link
    return info, data if kind == tarfile.REGTYPE else None


# --------------------------------------------------------------------------- canonical form and id


def test_id_is_the_sha256_of_the_canonical_form_whatever_the_order():
    a = Bundle.of(FILES)
    b = Bundle.of(dict(reversed(list(FILES.items()))))
    assert a.id == b.id and len(a.id) == 64
    assert Bundle.of({**FILES, "helper.py": b"X = 2\n"}).id != a.id  # any changed byte: another id
    assert Bundle.of({**FILES, "helper2.py": b"X = 1\n"}).id != a.id
    # the path/bytes boundary is part of the form: moving a byte from the name into the data changes the id
    assert bundle_id({"ab": b"c"}) != bundle_id({"a": b"bc"})


def test_pack_is_deterministic_and_round_trips():
    bundle = Bundle.of(FILES)
    assert pack(bundle) == pack(Bundle.of(dict(FILES)))
    again = unpack(pack(bundle), bundle.id)
    assert dict(again.files) == FILES and again.id == bundle.id


@pytest.mark.parametrize("name", ["/etc/passwd", "../evil.py", "a/../../evil.py", "a/./b.py", "", "a\\b.py", "a//b"])
def test_unsafe_paths_are_refused(name):
    with pytest.raises(BundleError):
        check_relpath(name)


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        (member("/tmp/owned.py"), "absolute path"),
        (member("../owned.py"), "'..'"),
        (member("pkg/../../owned.py"), "'..'"),
        (member("link.py", kind=tarfile.SYMTYPE, link="/etc/passwd"), "is a link"),
        (member("hard.py", kind=tarfile.LNKTYPE, link="mybatt.py"), "is a link"),
        (member("dir", kind=tarfile.DIRTYPE), "not a regular file"),
        (member("fifo", kind=tarfile.FIFOTYPE), "not a regular file"),
    ],
)
def test_unpack_refuses_unsafe_entries(entry, needle):
    blob = tar_of(member("mybatt.py", b"ok\n"), entry)
    with pytest.raises(BundleError, match=needle):
        unpack(blob, "0" * 64)


def test_unpack_refuses_over_size_over_count_and_bombs():
    limits = Limits(max_bytes=1000, max_files=3)
    with pytest.raises(BundleError, match="over the limit of"):
        unpack(pack(Bundle({"big.py": b"x" * 900, "b.py": b"y" * 200}, "0" * 64)), "0" * 64, limits)
    with pytest.raises(BundleError, match="has 4 files, over the limit of 3"):
        unpack(pack(Bundle({f"m{i}.py": b"" for i in range(4)}, "0" * 64)), "0" * 64, limits)
    bomb = gzip.compress(b"\0" * (50 * MB))  # 50 KB that inflate to 50 MB
    assert len(bomb) < MB
    with pytest.raises(BundleError, match="size bomb"):
        unpack(bomb, "0" * 64, Limits(max_bytes=MB, max_files=10))
    with pytest.raises(BundleError, match="not a valid gzip"):
        unpack(b"not gzip at all", "0" * 64)


def test_building_refuses_an_over_size_bundle(tmp_path):
    batt = write_batt(tmp_path / "b", "flip", "big")
    (tmp_path / "b" / "blob.bin").write_bytes(b"x" * (2 * MB))
    os.environ["BATT_MAX_BUNDLE_MB"] = "1"
    try:
        with pytest.raises(UsageError, match=r"MB unpacked, over the limit of 1 MB.*BATT_MAX_BUNDLE_MB"):
            build_bundle(batt, [], ["*.bin"], settings())
    finally:
        del os.environ["BATT_MAX_BUNDLE_MB"]


def test_tampered_bytes_under_the_same_id_are_refused():
    genuine = Bundle.of(FILES)
    evil = pack(Bundle({**FILES, "helper.py": b"import os; os.system('x')\n"}, genuine.id))
    with pytest.raises(BundleError, match="does not match its id"):
        unpack(evil, genuine.id)


def test_includes_resolve_under_the_batt_directory(tmp_path):
    batt = write_batt(tmp_path / "b", "flip", "inc")
    (tmp_path / "b" / "data").mkdir()
    (tmp_path / "b" / "data" / "t.json").write_text("{}")
    (tmp_path / "b" / "data" / "__pycache__").mkdir()
    (tmp_path / "b" / "data" / "__pycache__" / "x.pyc").write_bytes(b"")
    (tmp_path / "outside.txt").write_text("secret")
    assert include_files(tmp_path / "b", ["data"]) == ["data/t.json"]
    assert include_files(tmp_path / "b", ["data/*.json", "helper.py"]) == ["data/t.json", "helper.py"]
    with pytest.raises(UsageError, match="matches no file"):
        include_files(tmp_path / "b", ["nothing*.csv"])
    with pytest.raises(UsageError, match="relative to the batt's directory"):
        include_files(tmp_path / "b", ["../outside.txt"])
    (tmp_path / "b" / "escape.txt").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(UsageError, match="links outside the batt's directory"):
        include_files(tmp_path / "b", ["escape.txt"])
    bundle = build_bundle(batt, [str(tmp_path / "b" / "helper.py"), "/usr/lib/python3/x.py"], ["data"], settings())
    assert sorted(bundle.files) == ["data/t.json", "helper.py", "mybatt.py"]


# --------------------------------------------------------------------------- the disk cache


def test_cache_put_get_and_least_recently_used_eviction(tmp_path):
    cache = BundleCache(tmp_path / "c", max_bytes=2500)
    bundles = [Bundle.of({"m.py": bytes([65 + i]) * 1000}) for i in range(3)]
    a = cache.put(bundles[0])
    assert (a / "m.py").read_bytes() == b"A" * 1000
    os.utime(a, (1, 1))  # a was used long ago
    cache.put(bundles[1])
    assert cache.get(bundles[0].id) is not None  # using it makes it recent again
    os.utime(cache.path(bundles[1].id), (1, 1))
    cache.put(bundles[2])  # over 2500 bytes: the least recently used (bundle 1) goes
    assert cache.get(bundles[1].id) is None
    assert cache.get(bundles[0].id) is not None and cache.get(bundles[2].id) is not None
    assert not [p for p in (tmp_path / "c").iterdir() if p.name.startswith(".")]


def test_cache_ensure_fetches_once_and_reports_a_missing_bundle(tmp_path):
    cache = BundleCache(tmp_path / "c", max_bytes=MB)
    bundle = Bundle.of(FILES)
    calls = []
    for _ in range(2):
        cache.ensure(bundle.id, lambda: calls.append(1) or pack(bundle))
    assert calls == [1]
    with pytest.raises(BundleError, match="not in the result backend"):
        cache.ensure("f" * 64, lambda: None)
    with pytest.raises(BundleError, match="not a SHA-256"):
        cache.ensure("../../etc", lambda: None)


def _unpack_at_once(root: str, blob: bytes, bid: str, barrier: multiprocessing.synchronize.Barrier) -> str:
    barrier.wait()
    return str(BundleCache(root, max_bytes=64 * MB).ensure(bid, lambda: blob))


def test_two_concurrent_unpackers_do_not_corrupt_the_cache(tmp_path):
    files = {f"m{i}.py": os.urandom(20_000) for i in range(40)}
    bundle = Bundle.of(files)
    blob = pack(bundle)
    ctx = multiprocessing.get_context("spawn")
    for round_ in range(3):
        root = tmp_path / f"c{round_}"
        with ctx.Manager() as manager:
            barrier = manager.Barrier(2)
            with ctx.Pool(2) as pool:
                paths = pool.starmap(_unpack_at_once, [(str(root), blob, bundle.id, barrier)] * 2)
        assert paths[0] == paths[1] == str(root / bundle.id)
        got = {p.name: p.read_bytes() for p in (root / bundle.id).iterdir()}
        assert got == files
        assert [p.name for p in root.iterdir()] == [bundle.id]  # no temporary directory left behind


# --------------------------------------------------------------------------- signing


def test_sign_and_verify_with_current_and_previous_keys():
    message = {"batt": {"bundle": "a" * 64, "entry": "mybatt.py"}, "run_id": "r", "task_id": "t", "kind": "train"}
    message["index"] = 0
    keys = signing.Keys(b"k" * 32)
    message["sig"] = signing.sign(message, keys)
    assert signing.verify(message, keys)
    assert not signing.verify(message, signing.Keys(b"other" * 8))
    assert signing.verify(message, signing.Keys(b"new" * 11, previous=(b"k" * 32,)))  # during a rotation
    for field, value in (("batt", {"bundle": "b" * 64, "entry": "mybatt.py"}), ("run_id", "r2"), ("index", 1)):
        assert not signing.verify({**message, field: value}, keys), field
    assert not signing.verify({k: v for k, v in message.items() if k != "sig"}, keys)


def test_key_resolution(tmp_path, monkeypatch):
    for name in ("BATT_SIGNING_KEY", "BATT_SIGNING_KEY_FILE", "BATT_SIGNING_KEY_PREVIOUS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    first = signing.resolve_keys(settings())
    path = tmp_path / "cfg" / "batt-queue" / "signing.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing.resolve_keys(settings()).current == first.current  # the same file from then on
    monkeypatch.setenv("BATT_SIGNING_KEY", "short")
    with pytest.raises(signing.SigningError, match="at least 16"):
        signing.resolve_keys(settings())
    monkeypatch.setenv("BATT_SIGNING_KEY", "k" * 20)
    monkeypatch.setenv("BATT_SIGNING_KEY_PREVIOUS", "p" * 20)
    keys = signing.resolve_keys(settings())
    assert keys.current == b"k" * 20 and keys.previous == (b"p" * 20,)
    assert "k" * 20 not in repr(settings()) and "k" * 20 not in repr(keys)
    monkeypatch.delenv("BATT_SIGNING_KEY")
    monkeypatch.setenv("BATT_SIGNING_KEY_FILE", str(tmp_path / "missing.key"))
    with pytest.raises(signing.SigningError, match="cannot be read"):
        signing.resolve_keys(settings())


# --------------------------------------------------------------------------- the loader's per-bundle code


def test_code_is_cached_by_bundle_and_other_bundles_modules_leave(tmp_path, monkeypatch):
    monkeypatch.setenv("BATT_BUNDLE_CACHE", str(tmp_path / "cache"))
    bundles = []
    for name, dsl in (("a", "flip"), ("b", "flipud")):
        batt = write_batt(tmp_path / name, "identity", name, dsl=dsl)
        files = {p.name: p.read_bytes() for p in (tmp_path / name).iterdir()}
        bundle = Bundle.of(files)
        loader.bundle_cache().put(bundle)
        bundles.append(bundle)
        assert batt.name == "mybatt.py"
    a, b = bundles
    fa = load_bundle(a.id, "mybatt.py")
    assert fa("t", (), GRID, None, None)[0][0][3] == ((2, 1), (4, 3))
    fb = load_bundle(b.id, "mybatt.py")
    assert fb("t", (), GRID, None, None)[0][0][3] == ((3, 4), (1, 2))
    assert sys.modules["dsl"].__file__.startswith(str(tmp_path / "cache" / b.id))
    # back to a: the same function object (no re-import), and a's own dsl in sys.modules again
    assert load_code({"bundle": a.id, "entry": "mybatt.py"}) is fa
    assert sys.modules["dsl"].__file__.startswith(str(tmp_path / "cache" / a.id))
    assert fa("t", (), GRID, None, None)[0][0][3] == ((2, 1), (4, 3))
    assert str(tmp_path / "cache" / b.id) not in sys.path


def test_installed_module_hash_mismatch_is_refused():
    real = module_hash("batt_tasks.battery")
    assert len(real) == 64
    with pytest.raises(BattLoadError, match=r"differs from the producer's copy .*deadbeefdead.*" + real[:12]):
        load_code({"module": "batt_tasks.battery", "hash": "deadbeef" * 8})
    assert callable(load_code({"module": "batt_tasks.battery", "hash": real}))
    with pytest.raises(BattLoadError, match="is not installed here"):
        load_code({"module": "no_such_module_xyz_123", "hash": real})
