"""The Python API: score a batt on ARC tasks and read each task's result as it completes.

A program-synthesis search calls this once per iteration::

    from producer import RunOptions, load_tasks, score_batt

    tasks = load_tasks("arc-agi-1", "train")          # once: every run reuses the validated tasks
    with score_batt(RunOptions(tasks=tasks, count=5, batt="gen/batt.py", out=None, quiet=True)) as run:
        for result in run:                             # TaskResult records, in completion order
            print(result.task_id, result.train_scores)
    print(run.summary["solved"])

:func:`score_batt` checks everything before it returns (options, data, selection, the batt's import, the
broker), so a mistake raises at once — :class:`~producer.errors.UsageError`,
:class:`~batt_tasks.loader.BattLoadError` or :class:`~batt_tasks.config.ConfigError`, whose one-line message
is what ``batt-submit`` prints before exiting 2. The :class:`Run` it returns yields each task's result as
the task completes, writes the same files as ``batt-submit`` (none with ``out=None``), and, when left early
(``break``, an exception, Ctrl-C), cancels its pending samples and writes what finished. Repeated runs in
one process share the Celery app, its connections and the local batt process.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from batt_tasks.config import Settings, settings
from batt_tasks.loader import DEFAULT_BATT, resolve
from batt_tasks.sample import cancel_key
from producer.bundling import BattRejected, prepare_batt, stop_on_rejection
from producer.collect import Collector
from producer.data import Task, load_tasks
from producer.distributed import (
    BrokerUnavailable,
    DeadLetterWatch,
    LostSampleWatch,
    MissedResultWatch,
    NoWorker,
    NoWorkerWatch,
    cancel,
    check_broker,
    check_time_limit,
    collect,
    release,
    result_set,
    safe_url,
    sample_task_id,
    submit,
    workers_online,
)
from producer.errors import Interrupted, StopRun, UsageError
from producer.failures import FailureTracker
from producer.plan import new_run_id, sample_counts, sample_messages
from producer.plan_file import find_plan_file, local_status, save_plan_file
from producer.progress import RunProgress, say
from producer.results import RunWriter, prepare_out
from producer.resume import Plan, load_plan, resubmission_id, run_status, sample_name, save_plan
from producer.run import RunState, drive, heap_frozen
from producer.selection import new_seed, select

if TYPE_CHECKING:
    from producer.report import Report

DEFAULT_OUT = "runs"  # out of a new run; a resumed run defaults to its own
MODES = ("auto", "local", "distributed")
LOST_RECHECK_SECONDS = 2.0
WORKERS_SEEN_SECONDS = 10.0  # mode auto: a broker whose workers returned results this recently needs no ping
_workers_seen: dict[str, float] = {}  # broker URL → when a run in this process last collected a result from it


@dataclass
class RunOptions:
    """What to score, how and where; the fields mirror ``batt-submit``'s flags.

    - ``data``: a data set name (``arc-agi-1``...), a ``*_challenges.json`` or a directory of task files, or
      several of them (``--data`` repeated); ``split``: ``train``, ``eval`` or ``both`` (of a named set).
    - ``tasks``: tasks already loaded (:func:`producer.load_tasks`), used instead of reading ``data`` again;
      ``data`` then only labels the run in ``summary.json``.
    - ``count``/``start``/``seed``/``ids``: the task selection (``-c``/``-s``/``--seed``/``-i``).
    - ``batt``: module name or ``.py`` path; ``timeout``: the time limit of each batt call (``-t``).
    - ``batt_include``: with a ``.py`` batt, globs (relative to its directory) of further files to ship with
      it to the workers (``--batt-include``); the batt's own sibling modules are found by importing it.
    - ``out``: results go to ``out/<run_id>/``; ``None`` writes no file at all.
    - ``mode``: ``auto`` (distributed when a broker answers and a worker consumes, else local), ``local``
      (``--local``) or ``distributed`` (``--require-broker``: no broker is an error, no worker is waited for).
    - ``quiet``: no progress bar or notices (warnings are still printed on stderr).
    - ``no_worker_warn``/``no_worker_timeout``: ``--no-worker-warn``/``--no-worker-timeout``.
    - ``resume``: the run id of a run to continue (``--resume``): a distributed run's plan is read from the
      result backend, a local run's (or one whose backend lost it) from ``out/<run_id>/plan.json``; selection
      options are ignored, and ``out=None`` means the run's own directory (``runs/`` for a local run).
    - ``max_errors``: stop once this many samples failed (``--max-errors``); None: only the early stop when
      the first 20 finished samples all failed with the same message; 0: never stop for failures.
      A stopped run ends its iteration with ``summary["stopped"]`` saying why.
    - ``report``: write ``report.html`` (see ``batt-report``) into the run directory when the run ends, also
      when it ends early (``--report``); a report that cannot be written is a warning, never the run's failure.
    """

    data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = "arc-agi-1"
    split: str = "train"
    count: int = 0
    start: int = 0
    seed: int | None = None
    ids: Sequence[str] | None = None
    batt: str = DEFAULT_BATT
    batt_include: Sequence[str] = ()
    timeout: float = 20.0
    out: str | Path | None = DEFAULT_OUT
    mode: str = "auto"
    quiet: bool = False
    tasks: Mapping[str, Task] | None = None
    no_worker_warn: float = 5.0
    no_worker_timeout: float | None = None
    resume: str | None = None
    max_errors: int | None = None
    report: bool = False

    def check(self) -> None:
        """Raise :class:`UsageError` for an option no run can use."""
        if self.mode not in MODES:
            raise UsageError(f"mode {self.mode!r} is not one of {', '.join(MODES)}; pick one")
        for name, value in (("-t", self.timeout), ("--no-worker-warn", self.no_worker_warn)):
            _check_seconds(name, value)
        if self.no_worker_timeout is not None:
            _check_seconds("--no-worker-timeout", self.no_worker_timeout)
        if self.max_errors is not None and (
            isinstance(self.max_errors, bool) or not isinstance(self.max_errors, int) or self.max_errors < 0
        ):
            raise UsageError(f"--max-errors {self.max_errors!r}: pass a number of samples >= 0")


def _check_seconds(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
        raise UsageError(f"{name} {value!r}: the time limit must be a finite number of seconds > 0")


@dataclass(frozen=True)
class TaskResult:
    """One task's result: the fields of its ``results.jsonl`` line (see the README's "Result files").

    ``programs[cid]`` holds a candidate's ``t_n`` and ``evo``; ``prediction_candidates[i][k]`` is the
    candidate behind ``predictions[i][k]``; ``differ_solve``/``differ`` are the differ sums of the solve and
    diff calls; ``sample_seconds`` each sample's cost, train samples then test samples. (Lines written
    before these fields existed read back with them empty.)
    """

    task_id: str
    samples: dict[str, int]
    ok: int
    errors: int
    timeouts: int
    failures: list[dict[str, Any]]
    candidates: int
    train_scores: dict[str, int]
    test_scores: dict[str, int]
    train_perfect: list[str]
    differ: dict[str, dict[str, int]]
    predictions: list[list[list[list[int]]]]
    solved: bool | None
    seconds: float = 0.0
    programs: dict[str, dict[str, Any]] = field(default_factory=dict)
    differ_solve: dict[str, dict[str, int]] = field(default_factory=dict)
    prediction_candidates: list[list[str]] = field(default_factory=list)
    sample_seconds: list[float] = field(default_factory=list)

    @classmethod
    def from_line(cls, line: Mapping[str, Any]) -> TaskResult:
        """The record of a ``results.jsonl`` line (fields a line lacks take their defaults)."""
        return cls(**{f.name: line[f.name] for f in fields(cls) if f.name in line})

    def as_line(self) -> dict[str, Any]:
        """The ``results.jsonl`` line of this record."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def ranking(self) -> list[str]:
        """Candidate ids by train score, best first (ties by id): those that matched at least one train sample."""
        return sorted(self.train_scores, key=lambda cid: (-self.train_scores[cid], cid))


@dataclass
class _Setup:
    """What a run (new or resumed) is about to do."""

    run_id: str
    mode: str
    options: dict[str, Any]
    order: list[str]
    messages: list[dict[str, Any]]
    base: Path | None
    plan: Plan
    resumed: bool = False
    from_file: bool = False  # a resumed run whose plan came from its plan.json, not the result backend


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """A mode-choice warning, printed once per process (a search loop would print it at every run)."""
    if message not in _warned:
        _warned.add(message)
        say(message)


def _choose_mode(mode: str, conf: Settings, timeout: float) -> str:
    """local (asked for, or no broker, or a broker no worker consumes from) or distributed.

    ``distributed`` (or ``BATT_REQUIRE_BROKER=1``) makes an unreachable broker an error, and a broker
    without workers is used anyway: the run waits for workers (``no_worker_timeout`` bounds the wait).
    """
    if mode == "local":
        return "local"
    require = mode == "distributed" or conf.require_broker
    try:
        check_broker(conf.broker_url, timeout)
    except BrokerUnavailable as exc:
        if require:
            raise UsageError(
                f"broker unreachable ({exc}); start it, fix BATT_BROKER_URL, or drop --require-broker"
            ) from None
        _warn_once(f"warning: broker unreachable ({exc}); running in local sequential mode")
        return "local"
    # one answer is enough: the ping returns as soon as a worker answers, not after its whole timeout; a
    # worker that returned results in the last WORKERS_SEEN_SECONDS counts as an answer (no ping per run)
    seen = _workers_seen.get(conf.broker_url)
    recent = seen is not None and time.monotonic() - seen < WORKERS_SEEN_SECONDS
    if not require and not recent and not workers_online(timeout=min(timeout, 1.0), limit=1):
        _warn_once(
            f"warning: broker {safe_url(conf.broker_url)} answers but no worker is consuming; running in local "
            "sequential mode (start workers with: celery -A batt_tasks worker, or pass --require-broker to wait "
            "for them)"
        )
        return "local"
    return "distributed"


def _data_label(data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> str | list[str]:
    if isinstance(data, (str, os.PathLike)):
        return os.fspath(data)
    sources = [os.fspath(d) for d in data]
    return sources[0] if len(sources) == 1 else sources


def _new_setup(opts: RunOptions, conf: Settings) -> _Setup:
    tasks = opts.tasks if opts.tasks is not None else load_tasks(opts.data, opts.split)
    seed = opts.seed
    drawn = opts.count < 0 and not opts.ids and seed is None
    if drawn:
        seed = new_seed()
    wanted = [opts.ids] if isinstance(opts.ids, str) else list(opts.ids or [])  # one id given as a string
    ids = select(tasks.keys(), opts.count, opts.start, seed, wanted or None)
    if drawn:  # printed even when quiet: without it the draw could not be repeated
        say(f"seed {seed} (repeat this draw with --seed {seed})")
    batt = resolve(opts.batt)
    base = None if opts.out is None else prepare_out(str(opts.out))
    mode = _choose_mode(opts.mode, conf, conf.broker_check_timeout)
    if mode == "distributed":
        check_time_limit(opts.timeout, conf, _warn_once)
    run_id = new_run_id()
    options = {
        "data": _data_label(opts.data),
        "split": opts.split,
        "count": opts.count,
        "start": opts.start,
        "seed": seed,
        "ids": wanted or None,
        "batt": batt,
        "timeout": opts.timeout,
    }
    messages = sample_messages(run_id, tasks, ids, batt, opts.timeout)
    task_ids = {sample_name(m): sample_task_id(m) for m in messages}
    out = "" if base is None else str(base.resolve())
    plan = Plan(run_id, options, ids, {t: tasks[t] for t in ids}, out, task_ids)
    return _Setup(run_id, mode, options, ids, messages, base, plan)


def _find_plan(run_id: str, out: str | Path | None, conf: Settings, what: str) -> tuple[Plan, bool]:
    """The plan of ``run_id``: from the result backend when the broker answers and has it, else from
    ``out/RUN_ID/plan.json`` (``out`` defaults to ``runs``). Returns (plan, whether it came from the file)."""
    from batt_tasks.celery import app

    try:
        check_broker(conf.broker_url, conf.broker_check_timeout)
        unreachable = None
    except BrokerUnavailable as exc:
        unreachable = exc
    missing: Exception | None = None
    if unreachable is None:
        try:
            return load_plan(app, run_id), False
        except UsageError as exc:
            missing = exc
    folder = Path(out if out is not None else DEFAULT_OUT)
    plan = find_plan_file(folder, run_id)
    if plan is not None:
        return plan, True
    where = folder / run_id / "plan.json"
    if unreachable is not None:
        raise UsageError(
            f"{what} {run_id}: no {where}, and the broker is unreachable ({unreachable}); pass the run's --out, "
            "or start the broker"
        )
    raise UsageError(f"{missing}; nor is there a {where} (pass the run's --out)")


def _resume_setup(opts: RunOptions, conf: Settings) -> _Setup:
    assert opts.resume is not None
    plan, from_file = _find_plan(opts.resume, opts.out, conf, "--resume")
    plan.generation += 1
    base = prepare_out(str(opts.out if opts.out is not None else plan.out or DEFAULT_OUT))
    mode = "distributed"
    if from_file:  # a local run (or one whose backend lost it): locally, or on a cluster if one answers now
        mode = _choose_mode(opts.mode, conf, conf.broker_check_timeout)
        if mode == "distributed":
            check_time_limit(plan.options["timeout"], conf, _warn_once)
    messages = plan.messages()
    return _Setup(plan.run_id, mode, plan.options, plan.order, messages, base, plan, resumed=True, from_file=from_file)


def status(run_id: str, out: str | Path | None = None) -> str:
    """One line on a run's progress (``batt-submit --status``): for a distributed run, samples finished,
    running, queued (on RabbitMQ: queued or running, with the queue's counts), cancelled and lost; for a run
    known from ``out/RUN_ID/plan.json`` (a local run), what its ``results.jsonl`` holds."""
    from batt_tasks.celery import app

    conf = settings()
    plan, from_file = _find_plan(run_id, out, conf, "--status")
    if from_file:
        return local_status(plan, Path(out if out is not None else DEFAULT_OUT).expanduser() / plan.run_id)
    mark = app.backend.get(cancel_key(plan.run_id))
    stopped = mark is not None and int(mark) >= plan.generation
    return run_status(app, plan, conf.broker_url, stopped).line(plan)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """Once interrupted, finish cancelling and writing without being interrupted again (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class Run:
    """One scoring run: iterate it for :class:`TaskResult` records in completion order.

    When the iteration ends, :attr:`summary` holds what ``summary.json`` holds. Leaving early —
    :meth:`close`, the end of a ``with`` block, an exception or Ctrl-C in the loop — cancels the run's
    pending samples and writes the files of what finished (``summary["interrupted"]`` is then true).
    A Ctrl-C (or ``NoWorker``) during the run is raised to the caller after that cleanup.
    """

    def __init__(
        self,
        setup: _Setup,
        conf: Settings,
        quiet: bool,
        watch: tuple[float, float | None],
        report: bool = False,
        max_errors: int | None = None,
        includes: Sequence[str] = (),
    ) -> None:
        self.run_id = setup.run_id
        self.mode = setup.mode
        self.options = setup.options
        self.order = setup.order
        self.summary: dict[str, Any] | None = None
        self._setup = setup
        self._conf = conf
        self._quiet = quiet
        self._watch = watch
        self._report = report
        self._writer = RunWriter(setup.base, setup.run_id)
        # The batt is imported once before any work (in a spawned child), so a batt that cannot be imported
        # stops the run with a BattLoadError in either mode; local mode goes on using that child, which
        # then holds the run's bundle (producer.bundling: built, stored and signed for the cluster).
        try:
            self._runner = prepare_batt(
                setup.options, setup.messages, setup.mode, includes, self._writer.log_path, conf, setup.plan
            )
        except BaseException:
            self._writer.remove_if_empty()
            raise
        if self.mode == "distributed":
            self._runner.release()
        if self._writer.dir is not None:
            save_plan_file(self._writer.dir, setup.plan)  # --resume/--status find the run here, without the broker
        collector = Collector(sample_counts(setup.messages))
        for line in self._writer.tasks.values():
            collector.mark_done(line)
        errors_log = None if self._writer.dir is None else self._writer.dir / "errors.log"
        failures = FailureTracker(errors_log, say, max_errors)
        failures.seed(self._writer.tasks.values())
        self._state = RunState(
            self.run_id, self.mode, self.options, self.order, collector, self._writer, failures=failures
        )
        self._gen: Iterator[dict[str, Any]] | None = None
        self._closed = False
        verb = "resuming" if setup.resumed else "run"
        where = self._writer.dir if self._writer.dir is not None else "no files (out=None)"
        say(
            f"{verb} {self.run_id}: {len(self.order)} tasks, {len(setup.messages)} samples, {self.mode} mode → {where}",
            quiet,
        )

    @property
    def dir(self) -> Path | None:
        """The run's directory (``out/<run_id>``), or None when it writes no files."""
        return self._writer.dir

    def __iter__(self) -> Run:
        return self

    def __next__(self) -> TaskResult:
        if self._closed:
            raise StopIteration
        if self._gen is None:
            self._gen = self._lines()
        try:
            return TaskResult.from_line(next(self._gen))
        except StopIteration:
            self.close()
            raise

    def results(self) -> list[TaskResult]:
        """Every (remaining) task result, in completion order, once the run is over."""
        return list(self)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """End the run: cancel what is pending, stop the local batt process, write the files. Idempotent."""
        if self._closed:
            return
        self._closed = True
        complete = self._state.collector.samples_done >= self._state.collector.samples_total
        if not complete and self._state.stopped is None:
            self._state.interrupted = True
        with _signals_ignored():
            try:
                if self._gen is not None:
                    self._gen.close()  # runs the distributed cleanup (cancel, release) of an unfinished run
            finally:
                self._runner.release(force=not complete)
                self.summary = self._state.summary()
                self._writer.finish(self.summary, self.order)
                if self._report and self.dir is not None:
                    from producer.report import report_after_run  # here: its imports cost a run without it

                    report_after_run(self.dir, self._quiet)

    def report(self, against: str | Path | None = None, output: str | Path | None = None) -> Report:
        """Write this run's HTML report, as ``batt-report`` does, and return it (``.path``, and with ``against``
        — a run directory, or a run id beside this run — ``.comparison.line()``). Ends the run first, as
        :meth:`close` does, if it is still going."""
        from producer.report import write_report

        if self.dir is None:
            raise UsageError("this run writes no files (out=None), so it has no report; pass out=DIR")
        self.close()
        return write_report(self.dir, against, output, out=str(self.dir.parent))

    # ------------------------------------------------------------------------------------------- the work

    def _lines(self) -> Iterator[dict[str, Any]]:
        state = self._state
        c = state.collector
        with (
            heap_frozen(),
            RunProgress(
                len(self._setup.messages), len(self.order), self._quiet, c.samples_done, len(c.done_tasks)
            ) as p,
        ):
            try:
                if self.mode == "local":
                    pending = [m for m in self._setup.messages if m["task_id"] not in c.done_tasks]
                    try:
                        yield from drive(state, (self._runner.run(m) for m in pending), p)
                    except (KeyboardInterrupt, Interrupted):
                        self._interrupted()
                        raise
                else:
                    yield from self._distributed(p)  # its pending samples are cancelled on the way out
            except StopRun as exc:  # --max-errors, or the early stop: the iteration ends here
                state.stopped = str(exc)

    def _interrupted(self) -> None:
        self._state.interrupted = True
        self._runner.release(force=True)

    def _distributed(self, progress: RunProgress) -> Iterator[dict[str, Any]]:
        """Record the plan, submit the samples, then collect results as they complete; cancel what is left
        when the run stops early."""
        from batt_tasks.celery import app

        setup, state = self._setup, self._state
        plan = setup.plan
        assert plan is not None
        jobs, waiting, by_id = self._jobs(plan, set(state.collector.done_tasks))
        if setup.base is not None or setup.resumed:
            save_plan(app, plan)  # before submitting: a producer that dies mid-submission can be resumed
        done: set[str] = set()
        warn_after, give_up_after = self._watch
        watches = (
            NoWorkerWatch(app, warn_after, give_up_after, say),
            LostSampleWatch(app, self._conf.broker_url, by_id, done, plan.options["timeout"], say),
            MissedResultWatch(app, by_id, done),
            DeadLetterWatch(app),
        )
        results = None
        finished = False
        try:
            results = result_set(submit(jobs, plan.options["timeout"], app), waiting, app)
            yield from drive(state, stop_on_rejection(collect(results, by_id, watches, done)), progress)
            finished = True
        except (NoWorker, BattRejected) as exc:  # no worker, or a worker refused the batt: stop the run
            state.interrupted = True
            where = f"; results so far kept in {state.writer.dir}" if state.writer.dir is not None else ""
            raise type(exc)(f"{exc}{where}") from None
        except (KeyboardInterrupt, Interrupted):
            self._interrupted()
            raise
        finally:
            if done:
                _workers_seen[self._conf.broker_url] = time.monotonic()
            # stopped early (Ctrl-C, no worker, the caller left the loop): workers skip the rest
            pending = [i for i in by_id if i not in done]
            if not finished and pending:
                with _signals_ignored():
                    cancel(state.run_id, plan.generation, pending, app)
            if results is not None:
                release(results)

    def _jobs(
        self, plan: Plan, done_tasks: set[str]
    ) -> tuple[dict[str, dict[str, Any]], list[str], dict[str, dict[str, Any]]]:
        """Split a run's samples into those to submit now and those to wait for (already queued or running).

        Returns (jobs to submit: id → message, ids to wait for, id → message of everything collected).
        """
        from batt_tasks.celery import app

        by_name = {sample_name(m): m for m in self._setup.messages if m["task_id"] not in done_tasks}
        if not self._setup.resumed or self._setup.from_file:  # from plan.json: never submitted to this cluster
            jobs = {plan.task_ids[n]: m for n, m in by_name.items()}
            return jobs, [], dict(jobs)
        broker_url = self._conf.broker_url
        status = run_status(app, plan, broker_url)
        if status.lost:
            # Look again: a sample between two states (just acknowledged, or just redelivered) can look lost once.
            time.sleep(LOST_RECHECK_SECONDS)
            again = run_status(app, plan, broker_url)
            lost = sorted(set(status.lost) & set(again.lost))
            status = replace(again, lost=lost)
        cancelled = app.backend.get(cancel_key(plan.run_id)) is not None
        keep = set(status.finished) | (set() if cancelled else status.waiting())
        jobs: dict[str, dict[str, Any]] = {}
        waiting: list[str] = []
        for name, message in by_name.items():
            if name in keep:
                waiting.append(plan.task_ids[name])
            else:
                plan.task_ids[name] = resubmission_id(plan.run_id, name)
                jobs[plan.task_ids[name]] = message
        every = {plan.task_ids[n]: m for n, m in by_name.items()}
        say(
            f"resume: {len(status.finished)} samples finished, "
            f"{len(waiting) - len(set(status.finished) & set(by_name))} still queued or running, "
            f"{len(jobs)} submitted again",
            self._quiet,
        )
        return jobs, waiting, every


def score_batt(options: RunOptions | None = None, /, **kwargs: Any) -> Run:
    """Start scoring: check the options, load and select the tasks, import the batt, choose the mode.

    Pass a :class:`RunOptions`, or its fields as keyword arguments (``score_batt(batt="b.py", ids=[...])``),
    or both (keywords override). Raises :class:`~producer.errors.UsageError` (and
    :class:`~batt_tasks.loader.BattLoadError`, :class:`~batt_tasks.config.ConfigError`) with a one-line
    message; returns the :class:`Run`, which does the work as it is iterated.
    """
    opts = options if options is not None else RunOptions()
    if kwargs:
        opts = RunOptions(**{**{f.name: getattr(opts, f.name) for f in fields(opts)}, **kwargs})
    opts.check()
    conf = settings()
    setup = _resume_setup(opts, conf) if opts.resume else _new_setup(opts, conf)
    return Run(
        setup,
        conf,
        opts.quiet,
        (opts.no_worker_warn, opts.no_worker_timeout),
        opts.report,
        opts.max_errors,
        opts.batt_include,
    )


__all__ = ["DEFAULT_OUT", "MODES", "Run", "RunOptions", "TaskResult", "score_batt", "status"]
