"""The worker guard's pure parts: pressure readings, the hysteresis policy, and the thread-error mapping.

The replaced system died of ``OSError: [Errno 12] Cannot allocate memory`` when its pool forked,
``MemoryError`` in threads and ``RuntimeError: can't start new thread`` when many instances shared a
host. A batt-queue worker protects itself instead:

- :class:`Reader` takes cheap :class:`Readings` (well under a millisecond; it runs in the worker's
  event loop): available memory, from psutil for the host and from the worker's own cgroup (v1 or v2)
  when it has a limit, the tighter of the two winning; the threads of the worker's process tree; and
  the threads the host (``threads-max``, ``pid_max``) and the cgroup (``pids.max``) still allow.
- :class:`Policy` turns readings into a concurrency cap with hysteresis: one step down per check
  while pressure lasts (never below the floor, never 0); one step up only after the calmer recovery
  condition has held for ``BATT_GUARD_RECOVER_SECONDS``. Its clock is injectable, so tests drive it.
- :func:`critical_pressure` is the tighter, per-sample check: a sample that starts under critical
  pressure is deferred with a retry instead of being scored.
- :class:`ThreadStartError` is the one transient error the sample task retries with backoff;
  :func:`map_thread_error` and :func:`thread_error_in_result` recognise ``can't start new thread`` and
  nothing else.

Nothing here imports Celery; :mod:`batt_tasks.autoscaler` and :mod:`batt_tasks.control` wire it in.
All thresholds come from :mod:`batt_tasks.config` (``BATT_GUARD_*``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from batt_tasks.config import Settings, settings

logger = logging.getLogger("batt_tasks.guard")

MB = 1024 * 1024
#: cgroup v1 writes a page-aligned 2**63 - 1 for "no limit"; anything this large is no limit.
UNLIMITED = 1 << 60

THREAD_START_MESSAGE = "can't start new thread"
THREAD_START_RESULT_ERROR = f"RuntimeError: {THREAD_START_MESSAGE}"


# --------------------------------------------------------------------------------------------------
# Thread exhaustion: the one transient error


class ThreadStartError(Exception):
    """``RuntimeError: can't start new thread`` raised while scoring: retried with exponential backoff."""


def is_thread_start_error(exc: BaseException) -> bool:
    """Whether ``exc`` is exactly ``RuntimeError("can't start new thread")`` (no other RuntimeError)."""
    return type(exc) is RuntimeError and str(exc).strip() == THREAD_START_MESSAGE


def map_thread_error(exc: BaseException) -> BaseException:
    """``exc`` as a :class:`ThreadStartError` when it is thread exhaustion, else ``exc`` unchanged."""
    if is_thread_start_error(exc):
        mapped = ThreadStartError(THREAD_START_MESSAGE)
        mapped.__cause__ = exc
        return mapped
    return exc


def thread_error_in_result(result: Mapping[str, Any]) -> bool:
    """Whether a sample result from ``score_sample`` failed with ``RuntimeError: can't start new thread``.

    ``score_sample`` turns every batt exception into an ``error`` result (``Type: message``), so the
    sample task recognises thread exhaustion from the result and raises :class:`ThreadStartError`.
    """
    return result.get("status") == "error" and str(result.get("error") or "").strip() == THREAD_START_RESULT_ERROR


def thread_exhaustion_message(retries: int) -> str:
    """The error a sample's result carries when thread exhaustion outlasted its retries."""
    return f"thread exhaustion after {retries} retries"


# --------------------------------------------------------------------------------------------------
# Readings


@dataclass(frozen=True)
class CgroupMemory:
    """One cgroup level's memory: its limit and how much of it is still available."""

    version: int
    path: str
    limit_bytes: int
    available_bytes: int

    @property
    def available_pct(self) -> float:
        """Available memory as a percentage of this cgroup's limit."""
        return 100.0 * self.available_bytes / self.limit_bytes if self.limit_bytes else 0.0


@dataclass(frozen=True)
class Readings:
    """One look at the pressure on this worker; every field is a plain number or string."""

    #: ``time.monotonic()`` when taken (for the policy's clock) and the wall time (for people).
    monotonic: float
    wall: float
    #: The tighter of host and cgroup: fewest available bytes, lowest available percentage.
    available_mb: float
    available_pct: float
    memory_source: str
    host_available_mb: float
    host_total_mb: float
    cgroup_version: int | None
    cgroup_limit_mb: float | None
    cgroup_available_mb: float | None
    #: Threads in the worker's process tree (main process + pool children) and how many processes.
    worker_threads: int
    worker_processes: int
    #: Host-wide threads (kernel scheduling entities) and the smallest room left under any limit.
    host_threads: int
    threads_max: int | None
    pid_max: int | None
    cgroup_pids_current: int | None
    cgroup_pids_max: int | None
    thread_headroom: int | None
    thread_headroom_limit: str
    read_ms: float

    def as_dict(self) -> dict[str, Any]:
        """The readings as a JSON-ready dict (rounded for reading)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = round(value, 3)
        return out

    def summary(self) -> str:
        """A short human line: memory, threads, headroom."""
        mem = f"memory {self.available_mb:.0f} MB / {self.available_pct:.1f}% available ({self.memory_source})"
        threads = f"threads {self.worker_threads} in worker"
        room = "unknown" if self.thread_headroom is None else str(self.thread_headroom)
        return f"{mem}, {threads}, headroom {room} ({self.thread_headroom_limit})"


def _read_text(path: Path) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    """An integer file's value; ``max`` (cgroup v2's "no limit") and unreadable files are None."""
    text = _read_text(path)
    if text is None:
        return None
    text = text.strip()
    if not text or text == "max":
        return None
    try:
        value = int(text.split()[0])
    except ValueError:
        return None
    return None if value >= UNLIMITED else value


def _stat_fields(path: Path, names: Iterable[str]) -> dict[str, int]:
    """The named ``key value`` lines of a cgroup ``memory.stat`` file."""
    wanted = set(names)
    found: dict[str, int] = {}
    text = _read_text(path)
    if text is None:
        return found
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key in wanted:
            try:
                found[key] = int(value)
            except ValueError:
                continue
    return found


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` as ``{controller: path}``; the v2 unified line is under ``""``.

    v1 lines are ``hierarchy:controller[,controller]:path``; the v2 line is ``0::path``.
    """
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            paths[""] = path
            continue
        for name in controllers.split(","):
            paths[name] = path
    return paths


def _ancestry(base: Path, rel: str) -> list[Path]:
    """``base/rel`` and each parent up to ``base`` (leaf first); ``base`` alone if ``rel`` is not there.

    Inside a container the path in ``/proc/self/cgroup`` may be the host's while the container's own
    cgroup is mounted at ``base``; then ``base`` is the container's cgroup.
    """
    rel = rel.strip("/")
    leaf = base / rel if rel else base
    if not leaf.is_dir():
        return [base]
    dirs = [leaf]
    while dirs[-1] != base and base in dirs[-1].parents:
        dirs.append(dirs[-1].parent)
    return dirs


@dataclass(frozen=True)
class CgroupLayout:
    """Where this process's cgroup files are, resolved once per :class:`Reader`."""

    memory_version: int | None = None
    memory_dirs: tuple[Path, ...] = ()
    pids_version: int | None = None
    pids_dirs: tuple[Path, ...] = ()


def resolve_cgroups(root: Path, pid: str = "self") -> CgroupLayout:
    """Find the memory and pids cgroup directories of ``pid`` under ``root`` (``/`` for the real machine).

    v1 (or hybrid): a ``memory``/``pids`` controller line points into ``sys/fs/cgroup/<controller>``.
    v2: the ``0::path`` line points into ``sys/fs/cgroup`` (or ``sys/fs/cgroup/unified`` on hybrid
    hosts); every ancestor is kept because a parent's ``memory.max`` limits its children too.
    """
    text = _read_text(root / "proc" / pid / "cgroup")
    if text is None:
        return CgroupLayout()
    paths = parse_proc_cgroup(text)
    mount = root / "sys" / "fs" / "cgroup"
    unified = mount if (mount / "cgroup.controllers").exists() else mount / "unified"

    def pick(controller: str, v2_file: str) -> tuple[int | None, tuple[Path, ...]]:
        if controller in paths and (mount / controller).is_dir():
            return 1, (_ancestry(mount / controller, paths[controller])[0],)
        if "" in paths and unified.is_dir():
            dirs = [d for d in _ancestry(unified, paths[""]) if (d / v2_file).exists()]
            if dirs:
                return 2, tuple(dirs)
        return None, ()

    mem_version, mem_dirs = pick("memory", "memory.max")
    pids_version, pids_dirs = pick("pids", "pids.max")
    return CgroupLayout(mem_version, mem_dirs, pids_version, pids_dirs)


def read_cgroup_memory(layout: CgroupLayout) -> CgroupMemory | None:
    """The tightest limited cgroup level's memory, or None when no level has a limit.

    Usage counts reclaimable page cache, so like ``docker stats`` the inactive file cache is
    subtracted: v2 ``memory.current - inactive_file``; v1 ``memory.usage_in_bytes - total_inactive_file``
    with the limit the smaller of ``memory.limit_in_bytes`` and ``hierarchical_memory_limit``.
    """
    best: CgroupMemory | None = None
    for d in layout.memory_dirs:
        if layout.memory_version == 2:
            limits = [v for v in (_read_int(d / "memory.max"), _read_int(d / "memory.high")) if v is not None]
            if not limits:
                continue
            usage = _read_int(d / "memory.current")
            inactive = _stat_fields(d / "memory.stat", ("inactive_file",)).get("inactive_file", 0)
        else:
            stat = _stat_fields(d / "memory.stat", ("total_inactive_file", "hierarchical_memory_limit"))
            limits = [
                v
                for v in (_read_int(d / "memory.limit_in_bytes"), stat.get("hierarchical_memory_limit"))
                if v is not None and v < UNLIMITED
            ]
            if not limits:
                continue
            usage = _read_int(d / "memory.usage_in_bytes")
            inactive = stat.get("total_inactive_file", 0)
        if usage is None:
            continue
        limit = min(limits)
        available = max(0, limit - max(0, usage - inactive))
        level = CgroupMemory(layout.memory_version or 0, str(d), limit, available)
        if best is None or level.available_bytes < best.available_bytes:
            best = level
    return best


def read_cgroup_pids(layout: CgroupLayout) -> tuple[int, int] | None:
    """``(current, max)`` of the cgroup level with the least room under ``pids.max``, or None."""
    best: tuple[int, int] | None = None
    for d in layout.pids_dirs:
        limit = _read_int(d / "pids.max")
        current = _read_int(d / "pids.current")
        if limit is None or current is None:
            continue
        if best is None or limit - current < best[1] - best[0]:
            best = (current, limit)
    return best


def _psutil_host_memory() -> tuple[int, int]:
    mem = psutil.virtual_memory()
    return int(mem.available), int(mem.total)


class Reader:
    """Takes :class:`Readings`; resolves the cgroup layout once, then only reads small files.

    ``root`` is the filesystem root the ``proc`` and ``sys/fs/cgroup`` files are read under (a temporary
    directory in tests); ``host_memory`` returns ``(available, total)`` bytes and defaults to psutil.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] = "/",
        host_memory: Callable[[], tuple[int, int]] | None = None,
        pid: str = "self",
    ) -> None:
        self.root = Path(root)
        self.host_memory = host_memory or _psutil_host_memory
        self.layout = resolve_cgroups(self.root, pid)
        self._proc = self.root / "proc"

    def process_threads(self, pid: int) -> int | None:
        """Threads of one process from ``/proc/<pid>/stat`` (field 20), or None when it is gone."""
        text = _read_text(self._proc / str(pid) / "stat")
        if not text:
            return None
        fields = text.rpartition(")")[2].split()
        try:
            return int(fields[17])
        except (IndexError, ValueError):
            return None

    def read(self, pids: Iterable[int] = (), clock: Callable[[], float] = time.monotonic) -> Readings:
        """Read everything now. ``pids`` is the worker's process tree (main process and pool children)."""
        started = time.perf_counter()
        host_avail, host_total = self.host_memory()
        cg = read_cgroup_memory(self.layout)
        available, source = host_avail, "host"
        pct = 100.0 * host_avail / host_total if host_total else 0.0
        if cg is not None and cg.limit_bytes < host_total:
            if cg.available_bytes < available:
                available, source = cg.available_bytes, f"cgroup v{cg.version}"
            pct = min(pct, cg.available_pct)

        threads = processes = 0
        for pid in pids:
            n = self.process_threads(pid)
            if n is not None:
                threads += n
                processes += 1

        host_threads = 0
        loadavg = _read_text(self._proc / "loadavg")
        if loadavg:
            try:
                host_threads = int(loadavg.split()[3].split("/")[1])
            except (IndexError, ValueError):
                host_threads = 0
        threads_max = _read_int(self._proc / "sys" / "kernel" / "threads-max")
        pid_max = _read_int(self._proc / "sys" / "kernel" / "pid_max")
        pids = read_cgroup_pids(self.layout)
        rooms: list[tuple[int, str]] = []
        if threads_max is not None:
            rooms.append((threads_max - host_threads, "threads-max"))
        if pid_max is not None:
            rooms.append((pid_max - host_threads, "pid_max"))
        if pids is not None:
            rooms.append((pids[1] - pids[0], f"cgroup v{self.layout.pids_version} pids.max"))
        room, room_limit = min(rooms) if rooms else (None, "none")

        return Readings(
            monotonic=clock(),
            wall=time.time(),
            available_mb=available / MB,
            available_pct=pct,
            memory_source=source,
            host_available_mb=host_avail / MB,
            host_total_mb=host_total / MB,
            cgroup_version=cg.version if cg else self.layout.memory_version,
            cgroup_limit_mb=cg.limit_bytes / MB if cg else None,
            cgroup_available_mb=cg.available_bytes / MB if cg else None,
            worker_threads=threads,
            worker_processes=processes,
            host_threads=host_threads,
            threads_max=threads_max,
            pid_max=pid_max,
            cgroup_pids_current=pids[0] if pids else None,
            cgroup_pids_max=pids[1] if pids else None,
            thread_headroom=max(0, room) if room is not None else None,
            thread_headroom_limit=room_limit,
            read_ms=(time.perf_counter() - started) * 1000.0,
        )


_readers: dict[str, Reader] = {}


def reader(root: str = "/") -> Reader:
    """This process's :class:`Reader` for ``root``, created once (after a fork, the child makes its own)."""
    key = f"{os.getpid()}:{root}"
    found = _readers.get(key)
    if found is None:
        found = _readers[key] = Reader(root)
    return found


# --------------------------------------------------------------------------------------------------
# Policy


@dataclass(frozen=True)
class Thresholds:
    """The guard's levels; a level of 0 is off. See the ``BATT_GUARD_*`` table in :mod:`batt_tasks.config`."""

    min_available_mb: float = 256
    min_available_pct: float = 10.0
    max_threads: int = 1000
    min_thread_headroom: int = 512
    critical_available_mb: float = 128
    critical_available_pct: float = 5.0
    critical_thread_headroom: int = 128
    recover_factor: float = 1.5
    recover_seconds: float = 60.0

    @classmethod
    def from_settings(cls, s: Settings | None = None) -> Thresholds:
        """The thresholds of ``s`` (default: the environment now)."""
        s = s or settings()
        return cls(
            min_available_mb=s.guard_min_available_mb,
            min_available_pct=s.guard_min_available_pct,
            max_threads=s.guard_max_threads,
            min_thread_headroom=s.guard_min_thread_headroom,
            critical_available_mb=s.guard_critical_available_mb,
            critical_available_pct=s.guard_critical_available_pct,
            critical_thread_headroom=s.guard_critical_thread_headroom,
            recover_factor=s.guard_recover_factor,
            recover_seconds=s.guard_recover_seconds,
        )

    def as_dict(self) -> dict[str, Any]:
        """The thresholds as a JSON-ready dict."""
        return asdict(self)


def _memory_reasons(r: Readings, mb: float, pct: float) -> list[str]:
    reasons = []
    if pct and r.available_pct < pct:
        reasons.append(f"memory {r.available_pct:.1f}% available < {pct:g}% ({r.memory_source})")
    if mb and r.available_mb < mb:
        reasons.append(f"memory {r.available_mb:.0f} MB available < {mb:g} MB ({r.memory_source})")
    return reasons


def _headroom_reason(r: Readings, level: float) -> list[str]:
    if level and r.thread_headroom is not None and r.thread_headroom < level:
        return [f"thread headroom {r.thread_headroom} < {level:g} ({r.thread_headroom_limit})"]
    return []


def pressure_reasons(r: Readings, t: Thresholds) -> list[str]:
    """Why the cap should come down (the high-water marks), empty when it need not."""
    reasons = _memory_reasons(r, t.min_available_mb, t.min_available_pct)
    if t.max_threads and r.worker_threads > t.max_threads:
        reasons.append(f"threads {r.worker_threads} in worker > {t.max_threads}")
    return reasons + _headroom_reason(r, t.min_thread_headroom)


def critical_reasons(r: Readings, t: Thresholds) -> list[str]:
    """Why a sample should not start now (the tighter, critical levels), empty when it may."""
    return _memory_reasons(r, t.critical_available_mb, t.critical_available_pct) + _headroom_reason(
        r, t.critical_thread_headroom
    )


def is_calm(r: Readings, t: Thresholds) -> bool:
    """Whether readings are below the recovery (low-water) marks: thresholds widened by the factor."""
    f = t.recover_factor
    if t.min_available_pct and r.available_pct < t.min_available_pct * f:
        return False
    if t.min_available_mb and r.available_mb < t.min_available_mb * f:
        return False
    if t.max_threads and r.worker_threads > t.max_threads / f:
        return False
    room = r.thread_headroom
    return not (t.min_thread_headroom and room is not None and room < t.min_thread_headroom * f)


def critical_pressure(r: Readings, s: Settings | Thresholds | None = None) -> str | None:
    """The reason a sample must be deferred now, or None. ``s``: settings or thresholds (default: env)."""
    if isinstance(s, Settings) and not s.guard_enabled:
        return None
    t = s if isinstance(s, Thresholds) else Thresholds.from_settings(s)
    reasons = critical_reasons(r, t)
    return "; ".join(reasons) if reasons else None


def check_critical(s: Settings | None = None) -> tuple[str | None, Readings | None]:
    """Read this process's pressure now and judge it: ``(reason or None, readings)``.

    Called by the sample task at the start of a sample (in a pool process; the worker's thread
    count is not needed, so no process tree is read). Returns ``(None, None)`` when the guard is off.
    """
    s = s or settings()
    if not s.guard_enabled:
        return None, None
    global _last_critical_read
    now = time.monotonic()
    if _last_critical_read is None or now - _last_critical_read[0] > CRITICAL_READ_SECONDS:
        _last_critical_read = (now, reader().read())
    readings = _last_critical_read[1]
    return critical_pressure(readings, s), readings


CRITICAL_READ_SECONDS = 0.5  # a pool process reads pressure at most this often (samples can be a few ms long)
_last_critical_read: tuple[float, Readings] | None = None


@dataclass(frozen=True)
class Transition:
    """One change of the cap: when, from what to what, why, and the readings that decided it."""

    wall: float
    old: int
    new: int
    reason: str
    readings: Readings

    @property
    def direction(self) -> str:
        """``down`` or ``up``."""
        return "down" if self.new < self.old else "up"

    def message(self) -> str:
        """The one log line: ``guard: memory 7% available < 10% → concurrency 4→3 (readings...)``."""
        return f"guard: {self.reason} → concurrency {self.old}→{self.new} ({self.readings.summary()})"

    def as_dict(self) -> dict[str, Any]:
        """The transition as a JSON-ready dict."""
        return {
            "time": round(self.wall, 3),
            "iso": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.wall)),
            "old": self.old,
            "new": self.new,
            "direction": self.direction,
            "reason": self.reason,
            "message": self.message(),
            "readings": self.readings.as_dict(),
        }


@dataclass
class Policy:
    """The hysteresis state machine: readings in, a concurrency cap out.

    - Pressure (any high-water mark crossed): the cap falls one step per :meth:`observe`, down to
      ``floor`` (at least 1), and the recovery timer resets.
    - Calm (every reading past its low-water mark, :func:`is_calm`): once calm has held for
      ``recover_seconds`` the cap rises one step, and the timer starts over for the next step.
    - In between: the cap holds and the recovery timer resets (calm must *hold*).

    ``clock`` returns monotonic seconds; tests inject a fake one.
    """

    thresholds: Thresholds
    ceiling: int
    floor: int = 1
    clock: Callable[[], float] = time.monotonic
    cap: int = 0
    downgrades: int = 0
    upgrades: int = 0
    calm_since: float | None = None
    last_transition: Transition | None = None
    last_readings: Readings | None = None
    pressure: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.floor = max(1, self.floor)
        self.ceiling = max(self.floor, self.ceiling)
        if not self.cap:
            self.cap = self.ceiling
        self.cap = min(self.ceiling, max(self.floor, self.cap))

    def set_bounds(self, ceiling: int | None = None, floor: int | None = None) -> None:
        """New ``--autoscale`` bounds: an un-reduced cap follows the ceiling, a reduced one is clamped."""
        old_ceiling = self.ceiling
        if floor is not None:
            self.floor = max(1, floor)
        if ceiling is not None:
            self.ceiling = max(self.floor, ceiling)
        else:
            self.ceiling = max(self.floor, self.ceiling)
        if self.cap >= old_ceiling:
            self.cap = self.ceiling
        self.cap = min(self.ceiling, max(self.floor, self.cap))

    @property
    def reduced(self) -> bool:
        """Whether the guard holds the cap below the ceiling."""
        return self.cap < self.ceiling

    def observe(self, r: Readings) -> Transition | None:
        """Take one reading; return the transition it caused, if any (at most one step)."""
        now = self.clock()
        self.last_readings = r
        self.pressure = pressure_reasons(r, self.thresholds)
        if self.pressure:
            self.calm_since = None
            if self.cap <= self.floor:
                return None
            return self._move(self.cap - 1, "; ".join(self.pressure), r)
        if self.cap >= self.ceiling or not is_calm(r, self.thresholds):
            self.calm_since = None
            return None
        if self.calm_since is None:
            self.calm_since = now
        held = now - self.calm_since
        if held < self.thresholds.recover_seconds:
            return None
        self.calm_since = now
        return self._move(self.cap + 1, f"pressure gone for {held:.0f} s", r)

    def _move(self, new: int, reason: str, r: Readings) -> Transition:
        t = Transition(wall=time.time(), old=self.cap, new=new, reason=reason, readings=r)
        if new < self.cap:
            self.downgrades += 1
        else:
            self.upgrades += 1
        self.cap = new
        self.last_transition = t
        return t

    def state(self) -> dict[str, Any]:
        """The policy's state as a JSON-ready dict (for ``inspect guard`` and ``inspect stats``)."""
        calm_for = None if self.calm_since is None else round(self.clock() - self.calm_since, 3)
        return {
            "cap": self.cap,
            "ceiling": self.ceiling,
            "floor": self.floor,
            "reduced": self.reduced,
            "downgrades": self.downgrades,
            "upgrades": self.upgrades,
            "pressure": list(self.pressure),
            "calm_for_seconds": calm_for,
            "last_transition": self.last_transition.as_dict() if self.last_transition else None,
            "readings": self.last_readings.as_dict() if self.last_readings else None,
            "thresholds": self.thresholds.as_dict(),
        }


def log_transition(t: Transition, log: logging.Logger | None = None) -> None:
    """Log one transition as one line (warning going down, info going up)."""
    (log or logger).log(logging.WARNING if t.direction == "down" else logging.INFO, "%s", t.message())
