"""Batt bundles: exactly the code a batt runs, content-addressed, packed for the result backend, cached on disk.

A bundle is a set of files relative to the batt's directory: the batt file, the modules it imports from
its own directory tree, and data files named by ``--batt-include``. Its canonical form is the files
sorted by relative path, each as ``(path, bytes)``; its id is the SHA-256 of that form, so the same
bytes give the same id on every host and any changed byte gives another id.

For transport a bundle is packed as a gzip-compressed tar of regular files with fixed metadata.
:func:`unpack` trusts nothing in a packed bundle: it bounds the decompressed size (no size bomb), takes
regular files only (no symlinks, hard links, devices or directories), refuses absolute paths and ``..``,
caps the file count and total size, and recomputes the id from the bytes it read (a bundle changed in
the backend under the same id is refused before any of it is written or imported).

:class:`BundleCache` is the on-disk cache of unpacked bundles (one directory per id). Several pool
processes and workers on one host may share it: each unpacks into a private temporary directory and
renames it into place in one atomic step, so a reader sees a whole bundle or none. Past its size limit
the least recently used bundles are removed. Pure: nothing here knows of Celery or Redis.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import shutil
import tarfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MB = 1024 * 1024


class BundleError(Exception):
    """A bundle cannot be built, unpacked or used; the message names it, the cause and the fix."""


@dataclass(frozen=True)
class Limits:
    """Caps on one bundle (unpacked size and file count)."""

    max_bytes: int = 64 * MB
    max_files: int = 2000


def check_relpath(name: str) -> str:
    """``name`` as a safe relative POSIX path inside a bundle, or a :class:`BundleError`."""
    if not name or "\\" in name or "\x00" in name:
        raise BundleError(f"bundle entry {name!r} is not a plain relative path")
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/"):
        raise BundleError(f"bundle entry {name!r} is an absolute path; bundles hold relative paths only")
    if any(part in ("..", "") for part in name.split("/")) or ".." in path.parts:
        raise BundleError(f"bundle entry {name!r} leaves the bundle ('..'); bundles hold paths inside it only")
    if str(path) != name or name.startswith("./"):
        raise BundleError(f"bundle entry {name!r} is not in normal form (write it as {str(path)!r})")
    return name


def bundle_id(files: Mapping[str, bytes]) -> str:
    """SHA-256 (hex) of the canonical form: files sorted by path, each as length-prefixed path and bytes."""
    h = hashlib.sha256()
    for name in sorted(files):
        raw = name.encode("utf-8")
        data = files[name]
        h.update(b"%d:" % len(raw) + raw + b"%d:" % len(data))
        h.update(data)
    return h.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A bundle in memory: its files (relative path → bytes) and its id."""

    files: Mapping[str, bytes]
    id: str

    @classmethod
    def of(cls, files: Mapping[str, bytes], limits: Limits | None = None) -> Bundle:
        """The bundle of ``files``, checked against ``limits``."""
        for name in files:
            check_relpath(name)
        check_limits(len(files), sum(len(d) for d in files.values()), limits or Limits(), "batt bundle")
        return cls(dict(files), bundle_id(files))

    @property
    def size(self) -> int:
        return sum(len(d) for d in self.files.values())


def check_limits(count: int, size: int, limits: Limits, what: str) -> None:
    """Refuse a bundle over the file-count or size cap."""
    if count > limits.max_files:
        raise BundleError(
            f"{what} has {count} files, over the limit of {limits.max_files}; "
            "include fewer files (or raise BATT_MAX_BUNDLE_FILES on producer and workers)"
        )
    if size > limits.max_bytes:
        raise BundleError(
            f"{what} is {size / MB:.1f} MB unpacked, over the limit of {limits.max_bytes / MB:g} MB; "
            "include fewer or smaller files (or raise BATT_MAX_BUNDLE_MB on producer and workers)"
        )


def pack(bundle: Bundle) -> bytes:
    """The bundle as a deterministic gzip-compressed tar of regular files (same files → same bytes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(bundle.files):
            data = bundle.files[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), compresslevel=6, mtime=0)


def _inflate(blob: bytes, limit: int) -> bytes:
    """Decompress at most ``limit`` bytes; more is a size bomb."""
    d = zlib.decompressobj(wbits=31)
    try:
        out = d.decompress(blob, limit + 1)
    except zlib.error as exc:
        raise BundleError(f"bundle is not a valid gzip stream ({exc})") from None
    if len(out) > limit or d.unconsumed_tail:
        raise BundleError(
            f"bundle unpacks to more than {limit / MB:.1f} MB (a size bomb, or over BATT_MAX_BUNDLE_MB); refused"
        )
    return out


def unpack(blob: bytes, expected_id: str, limits: Limits | None = None) -> Bundle:
    """Read a packed bundle, refusing anything unsafe and any bytes whose id is not ``expected_id``."""
    limits = limits or Limits()
    # tar adds a 512-byte header (more with PAX records) per file and pads each file to 512 bytes
    raw = _inflate(blob, limits.max_bytes + (limits.max_files + 4) * 2048)
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for member in tar:
                name = check_relpath(member.name)
                if member.issym() or member.islnk():
                    raise BundleError(f"bundle entry {name!r} is a link; bundles hold regular files only")
                if not member.isfile():
                    raise BundleError(f"bundle entry {name!r} is not a regular file; bundles hold regular files only")
                if name in files:
                    raise BundleError(f"bundle entry {name!r} appears twice")
                total += member.size
                check_limits(len(files) + 1, total, limits, "bundle")
                fh = tar.extractfile(member)
                if fh is None:
                    raise BundleError(f"bundle entry {name!r} cannot be read")
                files[name] = fh.read()
    except tarfile.TarError as exc:
        raise BundleError(f"bundle is not a valid tar archive ({exc})") from None
    got = bundle_id(files)
    if got != expected_id:
        raise BundleError(
            f"bundle {expected_id[:12]} read from the result backend does not match its id (its bytes hash to "
            f"{got[:12]}): it was changed or corrupted there; nothing of it was run"
        )
    return Bundle(files, got)


def write_tree(bundle: Bundle, root: Path) -> None:
    """Write the bundle's files under the new, empty directory ``root`` (never following a link)."""
    for name in sorted(bundle.files):
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(bundle.files[name])


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(path):
        for n in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, n)).st_size
    return total


class BundleCache:
    """Unpacked bundles on disk, one directory per id, shared safely by every process of a host."""

    TMP_PREFIX = ".tmp-"
    TRASH_PREFIX = ".old-"
    STALE_SECONDS = 3600.0  # a temporary directory this old belongs to a process that died mid-unpack

    def __init__(self, root: Path | str, max_bytes: int, limits: Limits | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.limits = limits or Limits()

    def path(self, bid: str) -> Path:
        """The directory of bundle ``bid`` (which may not exist)."""
        if len(bid) != 64 or any(c not in "0123456789abcdef" for c in bid):
            raise BundleError(f"bundle id {bid!r} is not a SHA-256 hex digest")
        return self.root / bid

    def get(self, bid: str) -> Path | None:
        """The directory of a cached bundle (marked as just used), or ``None``."""
        path = self.path(bid)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def ensure(self, bid: str, fetch: Callable[[], bytes | None]) -> Path:
        """The directory of bundle ``bid``: from the cache, or fetched, verified, unpacked and renamed into place."""
        found = self.get(bid)
        if found is not None:
            return found
        blob = fetch()
        if blob is None:
            raise BundleError(
                f"bundle {bid[:12]} is not in the result backend (expired after BATT_RESULT_EXPIRES, or another "
                "BATT_RESULT_BACKEND); --resume the run on the producer's host (it stores the bundle again from "
                "its bundle cache), or submit the run again from the batt file"
            )
        return self.put(unpack(blob, bid, self.limits))

    def read(self, bid: str) -> Bundle | None:
        """Bundle ``bid`` read back from its cached directory (to store it again), or ``None`` when it is not
        cached or its files no longer hash to its id. Bytecode caches written beside the files are skipped."""
        path = self.get(bid)
        if path is None:
            return None
        try:
            names = sorted(
                p.relative_to(path).as_posix()
                for p in path.rglob("*")
                if p.is_file() and not p.is_symlink() and "__pycache__" not in p.relative_to(path).parts
            )
            bundle = Bundle.of(read_files(path, names), self.limits)
        except (OSError, BundleError):
            return None
        return bundle if bundle.id == bid else None

    def put(self, bundle: Bundle) -> Path:
        """Write ``bundle`` into the cache (a no-op when it is there) and return its directory."""
        final = self.path(bundle.id)
        found = self.get(bundle.id)
        if found is not None:
            return found
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f"{self.TMP_PREFIX}{bundle.id[:16]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            write_tree(bundle, tmp)
            try:
                os.rename(tmp, final)  # atomic; fails when another process put the same bundle first
            except OSError:
                if not final.is_dir():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        self.evict(keep=bundle.id)
        return final

    def entries(self) -> list[tuple[float, str, int]]:
        """``(last use, id, bytes)`` of every cached bundle."""
        out = []
        if not self.root.is_dir():
            return out
        for p in self.root.iterdir():
            if p.name.startswith("."):
                continue
            with contextlib.suppress(OSError):
                out.append((p.stat().st_mtime, p.name, _tree_size(p)))
        return out

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove least recently used bundles until the cache fits ``max_bytes``; also clear stale temporaries."""
        removed: list[str] = []
        entries = sorted(self.entries())
        total = sum(size for _, _, size in entries)
        for _, bid, size in entries:
            if total <= self.max_bytes:
                break
            if bid == keep:
                continue
            self._remove(self.root / bid)
            removed.append(bid)
            total -= size
        now = time.time()
        for p in self.root.iterdir() if self.root.is_dir() else ():
            if p.name.startswith((self.TMP_PREFIX, self.TRASH_PREFIX)):
                with contextlib.suppress(OSError):
                    if now - p.stat().st_mtime > self.STALE_SECONDS or p.name.startswith(self.TRASH_PREFIX):
                        shutil.rmtree(p, ignore_errors=True)
        return removed

    def _remove(self, path: Path) -> None:
        # Renamed away first (atomic), so no process ever sees a half-deleted bundle under its id.
        trash = self.root / f"{self.TRASH_PREFIX}{path.name[:16]}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(path, trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)


def read_files(root: Path, names: Iterable[str]) -> dict[str, bytes]:
    """The bytes of each file ``root/name``, read now (the bundle is the snapshot the run scores)."""
    return {name: (root / name).read_bytes() for name in names}
