"""A fix for kombu's Redis transport: a worker must survive its broker's crash.

Celery 5.7's consumer, on losing the broker, calls ``connection.collect()`` and then ``connection.close()``
(``Consumer.on_connection_error_after_connected``). ``collect()`` closes the connection's channels and then
detaches the transport (``transport.client = None``) even when a channel could not be closed:

- the channel whose BRPOP was in flight fails its close at reading the BRPOP reply;
- a channel with an auto-delete fanout queue (the worker's pidbox) fails its close at deleting that queue,
  which also ends kombu's loop over the channels not yet closed.

``close()`` then closes the consumer's channel again. Its unacknowledged messages are restored through
``Channel._connparams``, which reads ``transport.client.hostname``: an ``AttributeError`` that no
``ignore_errors`` catches, so the worker logs "Unrecoverable error" and exits. Fault scenario 4b (Redis
SIGKILLed mid-run) found it, about one crash in four on a loaded machine; ``tests/test_broker_fix.py``
reproduces it step by step.

The fix: on a detached transport ``_connparams`` raises redis' ``ConnectionError``, which is what the
situation is and what ``close()`` already ignores. The messages stay in Redis's ``unacked`` hash, and
the workers' visibility-timeout sweep redelivers them, as it does whenever Redis is down at a restore.
:func:`install` is idempotent; :mod:`batt_tasks.celery` calls it, so workers and producers both have it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

_MARK = "_batt_detached_transport_fix"


def install() -> None:
    """Make ``Channel._connparams`` raise ``redis.ConnectionError`` once the transport is detached."""
    channel_cls: Any = kombu_redis.Channel
    original: Callable[..., dict[str, Any]] = channel_cls._connparams
    if getattr(original, _MARK, False):
        return

    def _connparams(self: Any, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection was closed (transport detached)")
        return original(self, asynchronous=asynchronous)

    setattr(_connparams, _MARK, True)
    _connparams.__doc__ = original.__doc__
    channel_cls._connparams = _connparams
