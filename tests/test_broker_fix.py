"""batt_tasks.broker_fix: a worker's broker connection survives the Redis crash that made kombu raise.

The test replays, step by step with a real redis-server, what Celery 5.7's consumer does when Redis dies:
a consumer channel holding an unacknowledged delivery with a BRPOP in flight, a second channel with an
auto-delete fanout queue (the pidbox), Redis SIGKILLed, then ``connection.collect()`` and
``connection.close()``. Without the fix the ``close()`` raises ``AttributeError`` (the worker's
"Unrecoverable error"); with it nothing escapes, and the delivery is still in Redis's ``unacked`` hash
for the visibility-timeout sweep to redeliver.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Producer, Queue
from kombu.transport import redis as kombu_redis

from batt_tasks import broker_fix

pytestmark = pytest.mark.integration


def _crash_with_brpop_in_flight(redis_server: Any) -> Connection:
    """A connection in the state a worker is in when Redis dies under it; Redis is down on return."""
    conn = Connection(f"{redis_server.url}/0")
    channel = conn.default_channel
    queue = Queue("batt-fix", Exchange("batt-fix"), "batt-fix")
    queue(channel).declare()
    Producer(channel).publish({"sample": 1}, exchange=queue.exchange, routing_key="batt-fix")
    delivered: list[Any] = []
    channel.basic_consume("batt-fix", False, delivered.append, "consumer")
    conn.drain_events(timeout=5)
    assert len(delivered) == 1  # delivered, not acknowledged
    with pytest.raises(socket.timeout):
        conn.drain_events(timeout=0.2)  # leaves the next BRPOP in flight, as an idle worker slot does
    assert channel._in_poll
    pidbox = conn.channel()
    Queue("batt-fix-box", Exchange("batt-fix-box", type="fanout"), auto_delete=True)(pidbox).declare()
    assert pidbox.client is not None  # its client is cached, so its close tries to delete the queue
    redis_server.kill()
    return conn


def test_broker_crash_closes_cleanly_and_keeps_the_delivery(redis_server: Any) -> None:
    broker_fix.install()
    conn = _crash_with_brpop_in_flight(redis_server)
    conn.collect(socket_timeout=1)
    conn.close()  # raised AttributeError("'NoneType' object has no attribute 'hostname'") before the fix

    redis_server.start()
    unacked = redis.Redis.from_url(f"{redis_server.url}/0").hgetall("unacked")
    assert len(unacked) == 1, unacked  # the sweep will redeliver it: nothing lost


def test_install_is_idempotent() -> None:
    broker_fix.install()
    first = kombu_redis.Channel._connparams
    broker_fix.install()
    assert kombu_redis.Channel._connparams is first
