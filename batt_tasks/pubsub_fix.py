"""A fix for redis-py 8.1: a pub/sub message must not be turned into a discarded debug string.

With RESP3 (redis-py 8's default protocol) every pub/sub message goes through the parser's
``handle_pubsub_push_response``, which does ``logger.debug("Push response: " + str(response))``: the
concatenation runs whatever the log level, so ``str()`` of the whole message (the ``repr`` of every byte of
its payload) is built and thrown away. The producer receives each sample's result that way (Celery's Redis
result backend announces results by PUBLISH): with the built-in battery it was 9–13 % of the producer's
CPU while collecting, in ``PyBytes_Repr`` (callgrind). Reported as redis/redis-py#4230 and fixed upstream
(lazy ``%s`` formatting, redis/redis-py#4231), in no release this project can install yet.

:func:`install` replaces the handler of the pure-Python and the hiredis parser (sync; the async ones are not
used here) by one that formats only when the ``push_response`` logger is enabled for DEBUG: the same log
line when it is, no work when it is not. It is idempotent; :mod:`batt_tasks.celery` calls it, before any
connection exists, so producers and workers both have it.
"""

from __future__ import annotations

import logging
from typing import Any

from redis._parsers import hiredis, resp3

_MARK = "_batt_lazy_push_log"
_log = logging.getLogger("push_response")  # redis-py's logger name for these lines


def _handle_pubsub_push_response(self: Any, response: Any) -> Any:
    if _log.isEnabledFor(logging.DEBUG):
        _log.debug("Push response: %s", response)
    return response


setattr(_handle_pubsub_push_response, _MARK, True)


def install() -> None:
    """Make the sync parsers' pub/sub push handler log lazily."""
    for parser in (resp3._RESP3Parser, hiredis._HiredisParser):
        current = getattr(parser, "handle_pubsub_push_response", None)
        if current is None or getattr(current, _MARK, False):
            continue
        parser.handle_pubsub_push_response = _handle_pubsub_push_response
