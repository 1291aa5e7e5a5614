"""Distributed mode: one Celery task per sample on the broker, results collected as they complete.

- :func:`check_broker` decides the mode: a broker that answers within the deadline means distributed
  mode; an unreachable one means local fallback; a malformed URL or rejected password is the user's
  mistake (exit 2).
- :func:`submit` publishes every sample of the run at once over one producer connection, each with the
  soft and hard limits covering the sample's two batt calls (each call is limited to ``-t`` in the pool
  process itself, see :mod:`batt_tasks.call_limit`) and a deterministic task id.
- :func:`collect` yields sample results in completion order through Celery's native result joining
  (Redis pub/sub), turning task failures (hard time limit, dead pool process, exhausted retries) into
  that sample's ``timeout``/``error`` result; it warns when no worker consumes the queue.
- :func:`cancel` revokes a run's pending samples and marks the run cancelled for workers.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from celery import Celery, states
from celery.result import AsyncResult, ResultSet
from kombu.utils.url import maybe_sanitize_url

from batt_tasks.sample import cancel_key, carried_result
from batt_tasks.scoring import STATUS_ERROR, STATUS_TIMEOUT, failed_sample, one_line, sample_time_limit
from producer.errors import UsageError

HARD_LIMIT_GRACE = 1.0  # seconds between the soft limit (a timeout result) and the hard kill


class BrokerUnavailable(Exception):
    """No broker answered; the producer falls back to local mode (or stops, with --require-broker)."""


class NoWorker(Exception):
    """No worker consumed the run's samples within ``--no-worker-timeout``."""


def soft_limit(time_limit: float) -> float:
    """Celery's soft time limit of a sample whose batt calls are each limited to ``time_limit``: both calls."""
    return sample_time_limit(time_limit)


def hard_limit(time_limit: float) -> float:
    """Celery's hard time limit (the pool process is killed) of a sample whose calls are limited to ``time_limit``."""
    return soft_limit(time_limit) + HARD_LIMIT_GRACE


def check_time_limit(time_limit: float, visibility_timeout: int) -> None:
    """Refuse a ``-t`` the broker's visibility timeout cannot cover (a sample would be redelivered while running).

    A reserved sample may wait for one sample before it and then run up to its hard limit.
    """
    needed = 2 * hard_limit(time_limit)
    if needed > visibility_timeout:
        raise UsageError(
            f"-t {time_limit:g} needs BATT_VISIBILITY_TIMEOUT ≥ {needed:.0f} seconds (it is {visibility_timeout}); "
            "raise BATT_VISIBILITY_TIMEOUT on producer and workers, or lower -t"
        )


def safe_url(url: str) -> str:
    """A broker URL without its password, for messages (even when the URL is malformed)."""
    try:
        return str(maybe_sanitize_url(url))
    except ValueError:
        return re.sub(r"://[^/@]*@", "://**@", url)


def _check_url(url: str) -> str:
    """The URL's scheme; a malformed URL is a :class:`UsageError`."""
    shown = safe_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise UsageError(
            f"BATT_BROKER_URL {shown!r} is malformed ({exc}); use redis://[:password@]host:port/db"
        ) from None
    if not parts.scheme:
        raise UsageError(f"BATT_BROKER_URL {shown!r} is malformed (no scheme); use redis://[:password@]host:port/db")
    return parts.scheme


_check_clients: dict[tuple[str, float], Any] = {}  # one Redis client per broker, reused by every run's check


def _redis_client(url: str, timeout: float) -> Any:
    """The Redis client that checks ``url`` (kept: a search loop checks the broker once per run)."""
    import redis

    key = (url, timeout)
    client = _check_clients.get(key)
    if client is None:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        _check_clients[key] = client
    return client


def _drop_client(url: str, timeout: float) -> None:
    client = _check_clients.pop((url, timeout), None)
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()


def check_broker(url: str, timeout: float) -> None:
    """Return when the broker at ``url`` answers within ``timeout`` seconds.

    Raises :class:`BrokerUnavailable` when it does not answer, and :class:`UsageError` for a malformed URL
    or rejected credentials (falling back to local mode would hide those mistakes).
    """
    shown = safe_url(url)
    scheme = _check_url(url)
    if scheme in ("redis", "rediss"):
        import redis

        try:
            client = _redis_client(url, timeout)
        except ValueError as exc:
            raise UsageError(
                f"BATT_BROKER_URL {shown!r} is malformed ({exc}); use redis://[:password@]host:port/db"
            ) from None
        try:
            client.ping()
        except redis.exceptions.AuthenticationError as exc:
            _drop_client(url, timeout)
            raise UsageError(
                f"broker {shown} rejected the credentials ({exc}); fix the password in BATT_BROKER_URL"
            ) from None
        except redis.exceptions.InvalidResponse as exc:  # something answers there, but not in Redis's protocol
            said = str(exc).removeprefix("Protocol Error: ")
            raise UsageError(
                f"BATT_BROKER_URL {shown}: the service answering there is not Redis (it said {said[:120]}); "
                "point BATT_BROKER_URL at the Redis broker's host and port"
            ) from None
        except redis.exceptions.ResponseError as exc:
            _drop_client(url, timeout)
            if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
                raise UsageError(f"broker {shown} needs a password ({exc}); put it in BATT_BROKER_URL") from None
            raise BrokerUnavailable(f"{shown}: {exc}") from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            _drop_client(url, timeout)
            raise BrokerUnavailable(f"{shown}: {exc}") from None
        return
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
    except KeyError as exc:
        raise UsageError(f"BATT_BROKER_URL {shown!r}: unknown transport {exc}; use redis://host:port/db") from None
    except Exception as exc:  # noqa: BLE001 - any failure to connect means: no broker here
        raise BrokerUnavailable(f"{shown}: {one_line(exc)}") from None


def workers_online(timeout: float = 1.0, app: Celery | None = None, limit: int | None = None) -> list[str]:
    """Names of the workers that answer a ping within ``timeout`` seconds (returns at ``limit`` answers)."""
    app = app or _app()
    return sorted(name for reply in app.control.ping(timeout=timeout, limit=limit) for name in reply)


def sample_task_id(message: Mapping[str, Any]) -> str:
    """The deterministic Celery task id of a sample: ``<run_id>.<task_id>.<kind>.<index>``."""
    return f"{message['run_id']}.{message['task_id']}.{message['kind']}.{message['index']}"


def _app() -> Celery:
    from batt_tasks.celery import app

    return app


SUBMIT_CHUNK = 128  # samples whose messages (and task-sent events) go to Redis in one pipelined round trip


def submit(jobs: Mapping[str, Mapping[str, Any]], time_limit: float, app: Celery | None = None) -> list[AsyncResult]:
    """Publish every sample message (Celery task id → message) at once, over one producer connection.

    Pipelined: each chunk of :data:`SUBMIT_CHUNK` samples is one round trip to Redis (kombu's
    ``Producer.batch``) instead of two per sample. A chunk whose round trip fails leaves its delivery
    uncertain (``BatchPublishError``); it is published again one message at a time, with Celery's
    publish retries. A sample so published twice may run twice; its result is stored and collected once.
    """
    from kombu.exceptions import BatchPublishError

    app = app or _app()
    items = list(jobs.items())
    results: list[AsyncResult] = []
    with app.producer_or_acquire() as producer:
        for start in range(0, len(items), SUBMIT_CHUNK):
            chunk = items[start : start + SUBMIT_CHUNK]
            try:
                # room for every command of the chunk (a message and its sent event per sample): the one
                # round trip happens when the block ends, where a failure reaches this code
                with producer.batch(max_size=4 * len(chunk)):
                    sent = [_publish(task_id, m, time_limit, producer) for task_id, m in chunk]
            except BatchPublishError:
                sent = [_publish(task_id, m, time_limit, producer) for task_id, m in chunk]
            results.extend(sent)
    return results


def _publish(task_id: str, m: Mapping[str, Any], time_limit: float, producer: Any) -> AsyncResult:
    from batt_tasks.tasks import score_sample

    return score_sample.apply_async(
        args=[dict(m)],
        task_id=task_id,
        soft_time_limit=soft_limit(time_limit),
        time_limit=hard_limit(time_limit),
        argsrepr=f"{m['task_id']} {m['kind']}[{m['index']}]",
        kwargsrepr=f"run={m['run_id']}",
        producer=producer,
    )


def result_set(submitted: Sequence[AsyncResult], waiting: Sequence[str], app: Celery | None = None) -> ResultSet:
    """The results to collect: those just submitted and those of samples already queued or running."""
    app = app or _app()
    return ResultSet([*submitted, *(app.AsyncResult(i) for i in waiting)], app=app)


def failure_result(message: Mapping[str, Any], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The sample result of a task that ended without returning one (FAILURE or REVOKED).

    A sample that failed inside the batt (or timed out softly) carries its own result in the exception."""
    exc = meta.get("result")
    name = type(exc).__name__ if isinstance(exc, BaseException) else str(meta.get("status"))
    carried = carried_result(exc)  # an error/timeout sample the worker stored as FAILURE
    if carried is not None and carried.get("task_id") == message["task_id"]:
        return carried
    scored = message.get("expected") is not None
    args = (message["task_id"], message["kind"], message["index"])
    if name == "TimeLimitExceeded":
        return failed_sample(
            *args, STATUS_TIMEOUT, f"hard time limit of {hard_limit(message['time_limit']):g}s exceeded", scored
        )
    if name == "WorkerLostError":
        return failed_sample(*args, STATUS_ERROR, f"worker process died while scoring: {exc}", scored)
    if name == "TaskRevokedError" or meta.get("status") == "REVOKED":
        return failed_sample(*args, STATUS_ERROR, "sample revoked", scored)
    text = one_line(exc) if isinstance(exc, BaseException) else f"task {meta.get('status')}: {exc!r}"
    return failed_sample(*args, STATUS_ERROR, text, scored)


class StallWatch:
    """A check run between result drains once no result arrived for ``every`` seconds, then every ``every`` s."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.last_progress = time.monotonic()
        self.last_check = 0.0

    def progress(self) -> None:
        self.last_progress = time.monotonic()

    def due(self) -> bool:
        """True (and the check counted as done) when the collection has stalled for ``every`` seconds."""
        now = time.monotonic()
        if now - self.last_progress < self.every or now - self.last_check < self.every:
            return False
        self.last_check = now
        return True


class NoWorkerWatch(StallWatch):
    """Called between result drains: warns when nothing arrives and no worker answers a ping."""

    def __init__(
        self, app: Celery, warn_after: float, give_up_after: float | None, warn: Callable[[str], None]
    ) -> None:
        # checked every warn_after seconds, and also once --no-worker-timeout is reached (not at the next
        # warning after it: --no-worker-timeout 8 with warnings every 5 s stops after 8 s, not 10)
        super().__init__(warn_after if give_up_after is None else min(warn_after, give_up_after))
        self.warn_after = warn_after
        self.app = app
        self.give_up_after = give_up_after
        self.warn = warn
        self.no_worker_since: float | None = None
        self.last_warning = 0.0

    def progress(self) -> None:
        super().progress()
        self.no_worker_since = None

    def _give_up_due(self) -> bool:
        if self.give_up_after is None or self.no_worker_since is None:
            return False
        now = time.monotonic()
        if now - self.no_worker_since < self.give_up_after:
            return False
        self.last_check = now
        return True

    def __call__(self) -> None:
        if not (self.due() or self._give_up_due()):
            return
        now = self.last_check
        if self.app.control.ping(timeout=1.0, limit=1):
            self.no_worker_since = None
            return
        if self.no_worker_since is None:
            self.no_worker_since = self.last_progress
        idle = now - self.no_worker_since
        url = safe_url(self.app.conf.broker_url)
        if self.give_up_after is not None and idle >= self.give_up_after:
            raise NoWorker(f"no worker consumed samples from {url} for {idle:.0f}s (--no-worker-timeout)")
        if idle < self.warn_after or now - self.last_warning < self.warn_after:
            return
        self.last_warning = now
        self.warn(
            f"warning: no worker is consuming from {url} ({idle:.0f}s); start one with: "
            f"BATT_BROKER_URL={url} celery -A batt_tasks worker -c 2"
        )


class LostSampleWatch(StallWatch):
    """Publishes again the samples the broker lost: not finished, not queued, not held by any worker.

    kombu's Redis transport pops a message (BRPOP) before it records it as unacknowledged; a worker whose
    broker connection breaks between the two (Redis restarted or crashed) drops the message, and its
    sample would never finish. When no result arrived for ``every`` seconds, the producer looks for such
    samples (PENDING in the backend, absent from the queue and from ``unacked``, the same test as
    ``--status``); one still lost at the next check is published again under its own task id, whose
    result the run is already waiting for.
    """

    def __init__(
        self,
        app: Celery,
        broker_url: str,
        messages: Mapping[str, Mapping[str, Any]],
        done: set[str],
        time_limit: float,
        warn: Callable[[str], None],
        every: float = 10.0,
    ) -> None:
        super().__init__(every)
        self.app = app
        self.broker_url = broker_url
        self.messages = messages
        self.done = done
        self.time_limit = time_limit
        self.warn = warn
        self.suspects: set[str] = set()

    def __call__(self) -> None:
        if not self.due():
            return
        from producer.resume import backend_states, pending_in_broker

        pending = [i for i in self.messages if i not in self.done]
        try:
            states = backend_states(self.app, pending)
            queued, held = pending_in_broker(self.broker_url)
            in_broker = queued | held
        except Exception:  # noqa: BLE001 - the broker is away: look again at the next check
            return
        lost = {i for i in pending if states.get(i) == "PENDING" and i not in in_broker}
        again = lost & self.suspects
        self.suspects = lost - again
        if again:
            submit({i: self.messages[i] for i in sorted(again)}, self.time_limit, self.app)
            self.warn(f"warning: the broker lost {len(again)} queued samples (a Redis restart?); submitted them again")


class MissedResultWatch(StallWatch):
    """Collects results that are stored in the backend but were never announced to this producer.

    Celery's Redis result consumer, after losing its connection, reads the results already stored (MGET)
    and only then subscribes again; a result stored in between is announced to nobody, and the run would
    wait for it forever. When no result arrived for ``every`` seconds, this reads the results of the
    samples still pending and hands the finished ones to the result consumer, as Celery's reconnect does.
    """

    def __init__(self, app: Celery, messages: Mapping[str, Any], done: set[str], every: float = 5.0) -> None:
        super().__init__(every)
        self.app = app
        self.messages = messages
        self.done = done

    def __call__(self) -> None:
        if not self.due():
            return
        from producer.resume import backend_metas

        try:
            metas = backend_metas(self.app, [i for i in self.messages if i not in self.done])
        except Exception:  # noqa: BLE001 - the backend is away: look again at the next check
            return
        for meta in metas.values():
            if meta is not None and meta.get("status") in states.READY_STATES:
                self.app.backend.result_consumer.on_state_change(meta, None)


def collect(
    results: ResultSet,
    messages: Mapping[str, Mapping[str, Any]],
    watches: Sequence[NoWorkerWatch | LostSampleWatch | MissedResultWatch] = (),
    done: set[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield each sample's result as it completes (not in submission order); add its task id to ``done``.

    Between drains each watch is called (no worker? lost samples?); each result tells them of progress.
    """

    def on_interval() -> None:
        for watch in watches:
            watch()

    # interval=0: the first look at already-finished results does not sleep 0.5 s afterwards.
    for task_id, meta in results.iter_native(on_interval=on_interval, no_ack=True, interval=0):
        for watch in watches:
            watch.progress()
        message = messages.get(task_id)
        if message is None:
            continue
        if done is not None:
            done.add(task_id)
        if meta.get("status") == "SUCCESS" and isinstance(meta.get("result"), dict):
            yield meta["result"]
        else:
            yield failure_result(message, meta)


def release(results: ResultSet) -> None:
    """Stop listening for a run's results now, while the interpreter is whole.

    Otherwise each ``AsyncResult.__del__`` unsubscribes at interpreter exit, when redis-py can no
    longer import what it needs, and prints "Exception ignored" tracebacks.
    """
    for r in results.results:
        with contextlib.suppress(Exception):  # best effort: the connection may already be gone
            r.backend.remove_pending_result(r)


def cancel(run_id: str, generation: int, pending: Sequence[str], app: Celery | None = None) -> None:
    """Stop a run: workers skip its samples of this generation or older (the mark expires with the results),
    and queued ones are revoked. A resumed run submits a newer generation, which the mark does not stop."""
    app = app or _app()
    app.backend.set(cancel_key(run_id), str(generation))
    if pending:
        app.control.revoke(list(pending))
