"""Where samples travel: the ``batt`` queue, and on RabbitMQ its dead-letter queue.

On Redis the queue is a plain list (Celery's default declaration). On RabbitMQ it is a **quorum queue**
(replicated on a cluster, messages durable) with a delivery limit: a sample message returned to the queue
``BATT_DELIVERY_LIMIT`` times (every worker that took it died, or lost its connection) is dead-lettered to
``batt.dead`` instead of looping; the producer turns each dead letter into that sample's ``error`` result
(:class:`producer.brokers.rabbitmq.RabbitMQ`). The exchange is a topic exchange because Celery's native
delayed delivery — how retries with a countdown work on quorum queues — cannot route to a direct one.

Producer and workers declare the queue with the same arguments; RabbitMQ refuses a declaration whose
arguments differ from the existing queue's (``PRECONDITION_FAILED``), so ``BATT_DELIVERY_LIMIT`` must be
the same everywhere, and changing it means deleting the (drained) queue first.
"""

from __future__ import annotations

from kombu import Exchange, Queue

QUEUE = "batt"
DEAD_LETTER_EXCHANGE = "batt.dead"
DEAD_LETTER_QUEUE = "batt.dead"


class DeliveryLimitExceeded(Exception):
    """A sample's message was dead-lettered: delivered ``BATT_DELIVERY_LIMIT`` times, never acknowledged."""


def sample_queue(delivery_limit: int) -> Queue:
    """The RabbitMQ quorum queue of samples, dead-lettering after ``delivery_limit`` deliveries."""
    return Queue(
        QUEUE,
        Exchange(QUEUE, type="topic"),
        routing_key=QUEUE,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": DEAD_LETTER_QUEUE,
            # at-least-once dead-lettering: a dead letter is never dropped on the way (needs reject-publish)
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )


def dead_letter_queue() -> Queue:
    """The quorum queue that collects dead-lettered sample messages until a producer records them."""
    return Queue(
        DEAD_LETTER_QUEUE,
        Exchange(DEAD_LETTER_EXCHANGE, type="direct"),
        routing_key=DEAD_LETTER_QUEUE,
        queue_arguments={"x-queue-type": "quorum"},
    )
