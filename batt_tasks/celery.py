"""The Celery app: ``celery -A batt_tasks worker`` finds it here.

Every setting is chosen deliberately; the comment beside each says why. Values that vary by
deployment come from :mod:`batt_tasks.config` (environment variables), nowhere else.
"""

from __future__ import annotations

from celery import Celery

from batt_tasks import broker_fix, pubsub_fix
from batt_tasks.config import settings
from batt_tasks.queues import QUEUE, sample_queue

# Before any connection exists: a worker survives its broker's crash (see batt_tasks.broker_fix), and a
# result announced by pub/sub is not turned into a discarded debug string (see batt_tasks.pubsub_fix).
broker_fix.install()
pubsub_fix.install()

_conf = settings()

app = Celery("batt_tasks", include=["batt_tasks.tasks"])

app.conf.update(
    broker_url=_conf.broker_url,
    result_backend=_conf.result_backend,
    # JSON only: a message is data (grids, ids), never code; pickle would let a broker write run code.
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_accept_content=["json"],
    # Acknowledge a sample only after it is scored, so a worker that dies mid-sample loses nothing:
    # the broker hands the unacknowledged message to another worker.
    task_acks_late=True,
    # A pool process that died mid-sample (SIGKILL, segfault, os._exit, OOM kill) makes the sample be
    # retried like task.retry(): bounded by max_retries, so a batt that always crashes ends as an error
    # result instead of looping forever as task_reject_on_worker_lost would. The retry's countdown is the
    # task's default_retry_delay (see batt_tasks.tasks).
    task_retry_on_worker_lost=True,
    # One message reserved per pool process: samples are long, and a worker must not hoard samples
    # that idle processes elsewhere could score (and that it would hold hostage if it died).
    worker_prefetch_multiplier=1,
    # Redis redelivers an unacknowledged message after this many seconds; it must outlast the longest
    # sample (the producer refuses a -t it cannot cover), or a slow sample would run twice.
    # Every worker sweeps for such messages every BATT_RESTORE_INTERVAL seconds (kombu's default scans only
    # every 10th 10-second tick, so a dead worker's samples would wait up to 100 s more than the timeout).
    broker_transport_options={
        "visibility_timeout": _conf.visibility_timeout,
        "unacked_restore_interval": _conf.restore_interval,
        "unacked_restore_throttle": 1,
        # kombu's default, pinned: task events (when on) go to the event exchange as PUBLISH on one channel
        # per routing key, and every worker subscribes only to the patterns it needs. With it off, each
        # worker receives and decodes every task event of every other worker: about +24 % CPU per sample.
        "fanout_patterns": True,
    },
    result_backend_transport_options={"visibility_timeout": _conf.visibility_timeout},
    # Task events (worker task events and the producer's "sent" event) are off by default: they cost about
    # a third of the queue's CPU per sample. Flower does not need them from the start: while it runs it
    # broadcasts enable_events every few seconds, and workers (whose heartbeat must stay on: never
    # --without-heartbeat) then send task events until `celery control disable_events` or a restart.
    # BATT_TASK_EVENTS=1 turns both on from the start (queued samples then show in Flower as PENDING).
    worker_send_task_events=_conf.task_events,
    task_send_sent_event=_conf.task_events,
    # No STARTED state: it would cost every sample another backend round trip (a read and a write);
    # --status tells running samples from queued ones by the broker's unacked hash instead.
    task_track_started=False,
    # Results (and run plans) are kept this long, long enough to --resume a run, then Redis drops them.
    result_expires=_conf.result_expires,
    # Results are NOT extended with the task's name, args and worker: a result holds only the sample's
    # result. Flower names samples from their events (argsrepr), and --status by the run's plan.
    result_extended=False,
    # A result that cannot be stored because Redis is briefly away (restart, failover) is stored once it is
    # back, with capped exponential backoff, instead of turning a scored sample into a ConnectionError result.
    result_backend_always_retry=True,
    result_backend_max_retries=60,
    result_backend_max_sleep_between_retries_ms=2000,
    # Cold shutdown (SIGQUIT; SIGTERM too when the worker runs with REMAP_SIGTERM=SIGQUIT, as deploy/ does)
    # gives running samples this many seconds, then requeues them at once instead of leaving them to the
    # visibility timeout (0: off).
    worker_soft_shutdown_timeout=_conf.soft_shutdown_timeout,
    # Workers started before Redis keep retrying instead of exiting.
    broker_connection_retry_on_startup=True,
    # A pool process that grew past this is replaced after its sample: a leaky batt cannot eat the host.
    worker_max_memory_per_child=_conf.max_memory_per_child_kb,
    # A hard-timed-out or failed sample is acknowledged (its result says what happened), not requeued.
    task_acks_on_failure_or_timeout=True,
    # Samples go to one named queue, so runs, workers and monitoring agree on where work is.
    task_default_queue="batt",
)

if _conf.amqp:
    # RabbitMQ: an unacknowledged sample goes back to the queue the moment its worker's connection closes
    # (no visibility timeout: nothing is redelivered while the worker lives, however long the sample runs).
    app.conf.update(
        # A durable quorum queue with a delivery limit and a dead-letter queue (see batt_tasks.queues).
        task_queues=[sample_queue(_conf.delivery_limit)],
        task_default_exchange=QUEUE,
        task_default_exchange_type="topic",
        task_default_routing_key=QUEUE,
        # Quorum queues have no global QoS: the worker detects them and sets the prefetch per consumer; retries
        # with a countdown use native delayed delivery (celery_delayed_* quorum queues and a topic exchange)
        # instead of being held by the worker, which a quorum queue would not let it do safely.
        worker_detect_quorum_queues=True,
        broker_native_delayed_delivery_queue_type="quorum",
        # Publisher confirms: a submitted sample is on the broker (replicated on a cluster) before publish returns.
        broker_transport_options={"confirm_publish": True},
        # Heartbeats: a cut link is noticed within about twice this many seconds on both sides; the broker then
        # returns that worker's samples to the queue. Lower is faster, at the risk of dropping a connection
        # whose worker is too busy to answer for that long.
        broker_heartbeat=_conf.broker_heartbeat,
        broker_heartbeat_checkrate=2.0,
        # amqps://: verify the broker's certificate against BATT_BROKER_CA_FILE and its host name (None for amqp://).
        broker_use_ssl=_conf.broker_ssl(),
    )

# The worker guard (issue 4): with --autoscale=MAX,MIN the pool's cap falls under memory/thread pressure
# and grows back after recovery; `inspect guard` and `inspect stats` show why.
app.conf.worker_autoscaler = "batt_tasks.autoscaler:GuardedAutoscaler"

from batt_tasks import control  # noqa: E402 - registers the `guard` inspect command (worker and CLI)

control.install(app)
