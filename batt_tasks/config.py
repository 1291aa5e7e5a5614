"""All of batt-queue's configuration, read from environment variables in one place.

Every setting has a documented default; a test or a deployment changes behaviour by
environment alone. ``settings()`` reads the environment each time it is called, so a
test can set variables before the Celery app or the producer looks at them.

| variable | default | meaning |
|---|---|---|
| ``BATT_BROKER_URL`` | ``redis://localhost:6379/0`` | Celery broker |
| ``BATT_RESULT_BACKEND`` | the broker's Redis, db 1 | Celery result backend |
| ``BATT_VISIBILITY_TIMEOUT`` | ``3600`` | seconds before Redis redelivers an unacknowledged sample |
| ``BATT_RESULT_EXPIRES`` | ``86400`` | seconds results (and run plans) are kept in the backend |
| ``BATT_REQUIRE_BROKER`` | ``0`` | ``1``: the producer never falls back to local mode (as ``--require-broker``) |
| ``BATT_BROKER_CHECK_TIMEOUT`` | ``2`` | seconds the producer waits for the broker before falling back to local mode |
| ``BATT_MAX_RESULT_BYTES`` | ``1000000`` | largest JSON result one sample may return (packed form) |
| ``BATT_RETRY_MAX`` | ``5`` | retries of a sample that hit "can't start new thread" |
| ``BATT_RETRY_BACKOFF_MAX`` | ``60`` | cap, in seconds, of the exponential retry backoff |
| ``BATT_MAX_MEMORY_PER_CHILD_KB`` | ``2000000`` | a pool process that grew past this is replaced after its sample |
| ``BATT_RETRY_JITTER`` | ``1`` | ``0``: no random jitter in the retry backoff (delays exactly 1, 2, 4... s) |
| ``BATT_GUARD_ENABLED`` | ``1`` | ``0`` turns the worker guard off (no cap changes, no deferrals) |
| ``BATT_GUARD_MIN_AVAILABLE_MB`` | ``256`` | pressure: lower the pool's cap below this many MB available (0: off) |
| ``BATT_GUARD_MIN_AVAILABLE_PCT`` | ``10`` | pressure: lower the cap below this % of memory available (0: off) |
| ``BATT_GUARD_MAX_THREADS`` | ``1000`` | pressure: lower the cap above this many threads in the worker (0: off) |
| ``BATT_GUARD_MIN_THREAD_HEADROOM`` | ``512`` | pressure: lower the cap when fewer threads can be created (0: off) |
| ``BATT_GUARD_CRITICAL_AVAILABLE_MB`` | ``128`` | critical: a sample starting below this defers itself (0: off) |
| ``BATT_GUARD_CRITICAL_AVAILABLE_PCT`` | ``5`` | critical: a sample starting below this % defers itself (0: off) |
| ``BATT_GUARD_CRITICAL_THREAD_HEADROOM`` | ``128`` | critical: below this thread headroom a sample defers (0: off) |
| ``BATT_GUARD_RECOVER_FACTOR`` | ``1.5`` | hysteresis: growing back needs memory ≥ factor × its levels, threads ≤ ÷ |
| ``BATT_GUARD_RECOVER_SECONDS`` | ``60`` | recovery must hold this long before the cap grows back one step |
| ``BATT_GUARD_CHECK_SECONDS`` | ``2`` | how often the autoscaler reads pressure (at most one cap step per check) |
| ``BATT_GUARD_DEFER_SECONDS`` | ``5`` | countdown of the retry deferring a sample under critical pressure |
| ``BATT_RESTORE_INTERVAL`` | ``5`` | seconds between sweeps redelivering samples unacked past the visibility timeout |
| ``BATT_SOFT_SHUTDOWN_TIMEOUT`` | ``0`` | cold shutdown: seconds running samples get before being requeued (0: off) |
| ``BATT_BROKER_HEARTBEAT`` | ``10`` | RabbitMQ: AMQP heartbeat (s); a cut link is noticed in about twice this |
| ``BATT_DELIVERY_LIMIT`` | ``5`` | RabbitMQ: deliveries of a sample before it is dead-lettered |
| ``BATT_BROKER_CONSUMER_TIMEOUT`` | ``1800`` | RabbitMQ: the broker's ``consumer_timeout`` (s) |
| ``BATT_BROKER_CA_FILE`` | (unset: the system's CAs) | ``amqps://``: CA certificate (PEM) that signed the broker's |
| ``BATT_RABBITMQ_MANAGEMENT_URL`` | broker host, port 15672 | RabbitMQ management API (``off``: none) |
| ``BATT_TASK_EVENTS`` | ``0`` | ``1``: workers send task events and the producer the "sent" event from the start |
| ``BATT_SIGNING_KEY`` | (unset) | shared secret signing sample messages (producer and workers must agree) |
| ``BATT_SIGNING_KEY_FILE`` | (unset) | file holding the signing key (used when ``BATT_SIGNING_KEY`` is unset) |
| ``BATT_SIGNING_KEY_PREVIOUS`` | (unset) | workers also accept these keys (comma-separated), during a rotation |
| ``BATT_MAX_BUNDLE_MB`` | ``64`` | largest batt bundle, unpacked, in MB |
| ``BATT_MAX_BUNDLE_FILES`` | ``2000`` | most files in one batt bundle |
| ``BATT_BUNDLE_CACHE`` | ``~/.cache/batt-queue/bundles`` | unpacked bundles (honours ``$XDG_CACHE_HOME``) |
| ``BATT_BUNDLE_CACHE_MB`` | ``1024`` | the bundle cache's size; least recently used bundles are removed past it |

With neither signing variable set, producer and workers use the per-user key file
``~/.config/batt-queue/signing.key`` (created 0600 on first use), see :mod:`batt_tasks.signing`.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


class ConfigError(ValueError):
    """An environment variable holds a value that cannot be used."""


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number; set it to an integer ≥ {minimum}") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below {minimum}; set it to an integer ≥ {minimum}")
    return value


def _float(name: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; set it to a number ≥ {minimum}") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below {minimum}; set it to a number ≥ {minimum}")
    return value


AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})


def is_amqp(broker_url: str) -> bool:
    """Whether the broker URL names a RabbitMQ (AMQP 0-9-1) broker."""
    return urlsplit(broker_url).scheme in AMQP_SCHEMES


def default_backend(broker_url: str) -> str:
    """The broker's Redis with database 1, or the broker URL unchanged when it is not Redis."""
    parts = urlsplit(broker_url)
    if parts.scheme not in ("redis", "rediss"):
        return broker_url
    return urlunsplit(parts._replace(path="/1"))


@dataclass(frozen=True)
class Settings:
    broker_url: str
    result_backend: str
    visibility_timeout: int
    result_expires: int
    broker_check_timeout: float
    require_broker: bool
    max_result_bytes: int
    retry_max: int
    retry_backoff_max: int
    max_memory_per_child_kb: int
    retry_jitter: bool
    guard_enabled: bool
    guard_min_available_mb: int
    guard_min_available_pct: float
    guard_max_threads: int
    guard_min_thread_headroom: int
    guard_critical_available_mb: int
    guard_critical_available_pct: float
    guard_critical_thread_headroom: int
    guard_recover_factor: float
    guard_recover_seconds: float
    guard_check_seconds: float
    guard_defer_seconds: float
    restore_interval: int
    soft_shutdown_timeout: float
    task_events: bool
    broker_heartbeat: float
    delivery_limit: int
    broker_consumer_timeout: float
    rabbitmq_management_url: str
    signing_key: str = field(default="", repr=False)
    signing_key_file: str = ""
    signing_key_previous: str = field(default="", repr=False)
    max_bundle_mb: int = 64
    max_bundle_files: int = 2000
    bundle_cache: str = ""
    bundle_cache_mb: int = 1024
    broker_ca_file: str = ""

    @property
    def amqp(self) -> bool:
        """Whether the broker is RabbitMQ."""
        return is_amqp(self.broker_url)

    def broker_ssl(self) -> dict[str, object] | None:
        """py-amqp's TLS options for an ``amqps://`` broker (Celery's ``broker_use_ssl``), else None.

        The broker's certificate must chain to ``BATT_BROKER_CA_FILE`` (the system's CAs when unset) and name
        the URL's host. (kombu's ``?ssl_ca_certs=`` URL options work for ``rediss://`` only: py-amqp refuses them.)
        """
        parts = urlsplit(self.broker_url)
        if parts.scheme != "amqps":
            return None
        options: dict[str, object] = {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": parts.hostname or "localhost"}
        if self.broker_ca_file:
            options["ca_certs"] = self.broker_ca_file
        return options


def default_bundle_cache() -> str:
    """``$XDG_CACHE_HOME/batt-queue/bundles`` (default ``~/.cache/batt-queue/bundles``)."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return str(Path(base) / "batt-queue" / "bundles")


def _broker_ca_file(broker_url: str) -> str:
    """``BATT_BROKER_CA_FILE``: an existing file, and only for an ``amqps://`` broker."""
    raw = os.environ.get("BATT_BROKER_CA_FILE", "").strip()
    if not raw:
        return ""
    if urlsplit(broker_url).scheme != "amqps":
        raise ConfigError(
            f"BATT_BROKER_CA_FILE={raw!r} applies to amqps:// brokers only; unset it, or for rediss:// put "
            "?ssl_cert_reqs=required&ssl_ca_certs=FILE in BATT_BROKER_URL"
        )
    if not (Path(raw).is_file() and os.access(raw, os.R_OK)):
        raise ConfigError(
            f"BATT_BROKER_CA_FILE={raw!r} is not a readable file; set it to the CA certificate (PEM) "
            "that signed the broker's certificate"
        )
    return raw


def settings() -> Settings:
    """Read the settings from the environment now."""
    broker = os.environ.get("BATT_BROKER_URL", "").strip() or "redis://localhost:6379/0"
    return Settings(
        broker_url=broker,
        result_backend=os.environ.get("BATT_RESULT_BACKEND", "").strip() or default_backend(broker),
        visibility_timeout=_int("BATT_VISIBILITY_TIMEOUT", 3600, minimum=1),
        result_expires=_int("BATT_RESULT_EXPIRES", 86400, minimum=60),
        broker_check_timeout=_float("BATT_BROKER_CHECK_TIMEOUT", 2.0, minimum=0.1),
        require_broker=bool(_int("BATT_REQUIRE_BROKER", 0)),
        max_result_bytes=_int("BATT_MAX_RESULT_BYTES", 1_000_000, minimum=1024),
        retry_max=_int("BATT_RETRY_MAX", 5),
        retry_backoff_max=_int("BATT_RETRY_BACKOFF_MAX", 60, minimum=1),
        max_memory_per_child_kb=_int("BATT_MAX_MEMORY_PER_CHILD_KB", 2_000_000, minimum=10_000),
        retry_jitter=bool(_int("BATT_RETRY_JITTER", 1)),
        guard_enabled=bool(_int("BATT_GUARD_ENABLED", 1)),
        guard_min_available_mb=_int("BATT_GUARD_MIN_AVAILABLE_MB", 256),
        guard_min_available_pct=_float("BATT_GUARD_MIN_AVAILABLE_PCT", 10.0),
        guard_max_threads=_int("BATT_GUARD_MAX_THREADS", 1000),
        guard_min_thread_headroom=_int("BATT_GUARD_MIN_THREAD_HEADROOM", 512),
        guard_critical_available_mb=_int("BATT_GUARD_CRITICAL_AVAILABLE_MB", 128),
        guard_critical_available_pct=_float("BATT_GUARD_CRITICAL_AVAILABLE_PCT", 5.0),
        guard_critical_thread_headroom=_int("BATT_GUARD_CRITICAL_THREAD_HEADROOM", 128),
        guard_recover_factor=_float("BATT_GUARD_RECOVER_FACTOR", 1.5, minimum=1.0),
        guard_recover_seconds=_float("BATT_GUARD_RECOVER_SECONDS", 60.0),
        guard_check_seconds=_float("BATT_GUARD_CHECK_SECONDS", 2.0, minimum=0.05),
        guard_defer_seconds=_float("BATT_GUARD_DEFER_SECONDS", 5.0),
        restore_interval=_int("BATT_RESTORE_INTERVAL", 5, minimum=1),
        soft_shutdown_timeout=_float("BATT_SOFT_SHUTDOWN_TIMEOUT", 0.0),
        broker_heartbeat=_float("BATT_BROKER_HEARTBEAT", 10.0),
        delivery_limit=_int("BATT_DELIVERY_LIMIT", 5, minimum=1),
        broker_consumer_timeout=_float("BATT_BROKER_CONSUMER_TIMEOUT", 1800.0, minimum=1.0),
        rabbitmq_management_url=os.environ.get("BATT_RABBITMQ_MANAGEMENT_URL", "").strip(),
        task_events=bool(_int("BATT_TASK_EVENTS", 0)),
        signing_key=os.environ.get("BATT_SIGNING_KEY", "").strip(),
        signing_key_file=os.environ.get("BATT_SIGNING_KEY_FILE", "").strip(),
        signing_key_previous=os.environ.get("BATT_SIGNING_KEY_PREVIOUS", "").strip(),
        max_bundle_mb=_int("BATT_MAX_BUNDLE_MB", 64, minimum=1),
        max_bundle_files=_int("BATT_MAX_BUNDLE_FILES", 2000, minimum=1),
        bundle_cache=os.environ.get("BATT_BUNDLE_CACHE", "").strip() or default_bundle_cache(),
        bundle_cache_mb=_int("BATT_BUNDLE_CACHE_MB", 1024, minimum=1),
        broker_ca_file=_broker_ca_file(broker),
    )
