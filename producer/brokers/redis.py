"""Redis as the broker: the queue is a list, unacknowledged messages are kombu's ``unacked`` hash.

Every waiting sample can be placed: queued (in the list) or held by a worker (in the hash, including
those of a worker that died, which Redis redelivers after ``BATT_VISIBILITY_TIMEOUT``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from batt_tasks.queues import QUEUE
from producer.brokers import BrokerUnavailable, BrokerView, Depth, Placement, hard_limit
from producer.errors import UsageError

UNACKED_KEY = "unacked"  # kombu's Redis transport default


def _message_ids(raws: Iterable[bytes | str], nested: bool) -> set[str]:
    ids: set[str] = set()
    for raw in raws:
        try:
            payload = json.loads(raw)
            envelope = payload[0] if nested else payload
            envelope = json.loads(envelope) if isinstance(envelope, str) else envelope
            ids.add(envelope["headers"]["id"])
        except (ValueError, KeyError, TypeError, IndexError):
            continue
    return ids


_check_clients: dict[tuple[str, float], Any] = {}  # one Redis client per broker, reused by every run's check


def _check_client(url: str, timeout: float) -> Any:
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


class Redis(BrokerView):
    """A Redis broker (``redis://``, ``rediss://``)."""

    name = "Redis"

    def check(self, timeout: float) -> None:
        import redis

        try:
            client = _check_client(self.url, timeout)
        except ValueError as exc:
            raise UsageError(
                f"BATT_BROKER_URL {self.shown!r} is malformed ({exc}); use redis://[:password@]host:port/db"
            ) from None
        try:
            client.ping()
        except redis.exceptions.AuthenticationError as exc:
            _drop_client(self.url, timeout)
            raise UsageError(
                f"broker {self.shown} rejected the credentials ({exc}); fix the password in BATT_BROKER_URL"
            ) from None
        except redis.exceptions.InvalidResponse as exc:  # something answers there, but not in Redis's protocol
            _drop_client(self.url, timeout)
            said = str(exc).removeprefix("Protocol Error: ")
            raise UsageError(
                f"BATT_BROKER_URL {self.shown}: the service answering there is not Redis (it said {said[:120]}); "
                "point BATT_BROKER_URL at the Redis broker's host and port"
            ) from None
        except redis.exceptions.ResponseError as exc:
            _drop_client(self.url, timeout)
            if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
                raise UsageError(f"broker {self.shown} needs a password ({exc}); put it in BATT_BROKER_URL") from None
            raise BrokerUnavailable(f"{self.shown}: {exc}") from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            _drop_client(self.url, timeout)
            raise BrokerUnavailable(f"{self.shown}: {exc}") from None

    def check_time_limit(self, time_limit: float, warn: Callable[[str], None]) -> None:
        """Refuse a ``-t`` the visibility timeout cannot cover (a sample would be redelivered while running).

        A reserved sample may wait for one sample before it and then run up to its hard limit.
        """
        needed = 2 * hard_limit(time_limit)
        visibility = self.conf.visibility_timeout
        if needed > visibility:
            raise UsageError(
                f"-t {time_limit:g} needs BATT_VISIBILITY_TIMEOUT ≥ {needed:.0f} seconds (it is {visibility}); "
                "raise BATT_VISIBILITY_TIMEOUT on producer and workers, or lower -t"
            )

    def _read(self) -> tuple[list[bytes], list[bytes]]:
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            # One transaction: a message moving from the queue to unacked between two reads would look lost.
            with client.pipeline(transaction=True) as pipe:
                queued, unacked = pipe.lrange(QUEUE, 0, -1).hvals(UNACKED_KEY).execute()
        finally:
            client.close()
        return queued, unacked

    def placement(self) -> Placement:
        queued, unacked = self._read()
        return Placement(_message_ids(queued, nested=False), _message_ids(unacked, nested=True))

    def depth(self) -> Depth:
        queued, unacked = self._read()
        return Depth(len(queued), len(unacked), None)
