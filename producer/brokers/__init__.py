"""What the producer reads from the broker itself, behind one interface, one module per broker.

- :class:`BrokerView` is that interface: check the broker answers (the mode choice), where each sample
  is (queued, held by a worker) when the broker can say, the queue's depth, the time limits the broker
  allows, and the dead letters to record as results.
- :mod:`producer.brokers.redis`: Redis, whose queue is a list and whose unacknowledged messages are a
  hash, so every sample can be placed.
- :mod:`producer.brokers.rabbitmq`: RabbitMQ, which gives counts (ready, unacknowledged, consumers) but
  never the messages themselves without taking them, so no sample can be placed.

:func:`broker_view` picks the module for ``BATT_BROKER_URL``; nothing else in the producer branches on
the broker.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kombu.utils.url import maybe_sanitize_url

from batt_tasks.config import AMQP_SCHEMES, Settings
from batt_tasks.scoring import sample_time_limit
from producer.errors import UsageError

HARD_LIMIT_GRACE = 1.0  # seconds between the soft limit (a timeout result) and the hard kill


def soft_limit(time_limit: float) -> float:
    """Celery's soft time limit of a sample whose batt calls are each limited to ``time_limit``: both calls."""
    return sample_time_limit(time_limit)


def hard_limit(time_limit: float) -> float:
    """Celery's hard time limit (the pool process is killed) of a sample whose calls are limited to ``time_limit``."""
    return soft_limit(time_limit) + HARD_LIMIT_GRACE


def safe_url(url: str) -> str:
    """A broker URL without its password, for messages (even when the URL is malformed)."""
    try:
        return str(maybe_sanitize_url(url))
    except ValueError:
        return re.sub(r"://[^/@]*@", "://**@", url)


class BrokerUnavailable(Exception):
    """No broker answered; the producer falls back to local mode (or stops, with --require-broker)."""


@dataclass(frozen=True)
class Placement:
    """Task ids of the messages waiting in the queue and of those held (delivered, unacknowledged) by workers."""

    queued: set[str]
    held: set[str]


@dataclass(frozen=True)
class Depth:
    """Counts of the whole sample queue (every run's samples); None where the broker did not say."""

    ready: int | None
    unacked: int | None
    consumers: int | None
    dead_letters: int | None = None

    def describe(self, queue: str) -> str:
        def n(v: int | None) -> str:
            return "?" if v is None else str(v)

        text = f"queue {queue}: {n(self.ready)} ready, {n(self.unacked)} unacknowledged, {n(self.consumers)} consumers"
        if self.dead_letters:
            text += f", {self.dead_letters} dead letters not yet recorded"
        return text


@dataclass(frozen=True)
class DeadLetter:
    """A sample message the broker gave up on: its Celery task id, and why (``delivery_limit``, ``rejected`` ...)."""

    task_id: str
    reason: str


class BrokerView:
    """The broker as the producer sees it; subclasses implement one broker."""

    name = "broker"
    per_sample = True  # whether :meth:`placement` can say where each sample is

    def __init__(self, conf: Settings) -> None:
        self.conf = conf
        self.url = conf.broker_url
        self.shown = safe_url(conf.broker_url)

    def check(self, timeout: float) -> None:
        """Return when the broker answers; :class:`BrokerUnavailable` or :class:`UsageError` otherwise."""
        raise NotImplementedError

    def check_time_limit(self, time_limit: float, warn: Callable[[str], None]) -> None:
        """Refuse (or warn about) a ``-t`` the broker's redelivery rules cannot cover."""

    def prepare(self, app: Any) -> None:
        """Declare what must exist before samples are submitted (nothing, by default)."""

    def placement(self) -> Placement | None:
        """Where each waiting sample is, or None when the broker cannot say per sample."""
        raise NotImplementedError

    def depth(self) -> Depth:
        """The sample queue's counts."""
        raise NotImplementedError

    def drain_dead_letters(self, app: Any, record: Callable[[DeadLetter], None], limit: int = 1000) -> int:
        """Take up to ``limit`` dead letters, ``record`` each, then acknowledge it; return how many (none here)."""
        return 0

    def record_submitted(self, app: Any, run_id: str, task_ids: Iterable[str]) -> None:
        """Remember that the broker confirmed these samples (for ``--resume`` where placement is unknown)."""

    def submitted(self, app: Any, run_id: str) -> set[str] | None:
        """Task ids the broker confirmed for the run (None: not recorded; the broker places samples itself)."""
        return None


def scheme(url: str) -> str:
    """The URL's scheme; a malformed URL is a :class:`UsageError`."""
    shown = safe_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise UsageError(
            f"BATT_BROKER_URL {shown!r} is malformed ({exc}); use redis://[:password@]host:port/db "
            "or amqp://user:password@host:port/vhost"
        ) from None
    if not parts.scheme:
        raise UsageError(
            f"BATT_BROKER_URL {shown!r} is malformed (no scheme); use redis://[:password@]host:port/db "
            "or amqp://user:password@host:port/vhost"
        )
    return parts.scheme


def broker_view(conf: Settings) -> BrokerView:
    """The view of ``conf.broker_url``'s broker (a malformed URL or unknown scheme is a :class:`UsageError`)."""
    kind = scheme(conf.broker_url)
    if kind in ("redis", "rediss"):
        from producer.brokers.redis import Redis

        return Redis(conf)
    if kind in AMQP_SCHEMES:
        from producer.brokers.rabbitmq import RabbitMQ

        return RabbitMQ(conf)
    raise UsageError(
        f"BATT_BROKER_URL {safe_url(conf.broker_url)!r}: unsupported broker {kind!r}; "
        "use redis://host:port/db or amqp://user:password@host:port/vhost"
    )
