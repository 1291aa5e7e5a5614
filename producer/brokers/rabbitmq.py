"""RabbitMQ as the broker: a quorum queue whose unacknowledged messages are tied to their consumer's connection.

What the producer can know here, and what it cannot:

- **Counts, not samples.** RabbitMQ says how many messages the ``batt`` queue holds ready and how many are
  delivered and unacknowledged (from its management API; over AMQP only the ready count and the consumers),
  for every run together. It never shows a message without taking it, so no sample can be placed as queued
  or running: ``--status`` reports those together as "queued or running".
- **Nothing is lost silently.** Submission waits for publisher confirms, the queue is durable, and a worker's
  unacknowledged samples go back to the queue when its connection closes. So a sample the broker confirmed
  either finishes, or is dead-lettered after ``BATT_DELIVERY_LIMIT`` deliveries. ``--resume`` therefore
  waits for every unfinished sample whose submission was confirmed (the producer records confirmed ids per
  run in the result backend) and submits again only the rest.
- **Dead letters become results.** The producer (any producer: the result goes to the backend, where the
  run's own producer, or a later ``--resume``, collects it) takes dead-lettered messages from ``batt.dead``
  and stores each as its sample's failure; a message is acknowledged only after its failure is stored.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

from batt_tasks.queues import DEAD_LETTER_QUEUE, QUEUE, dead_letter_queue, sample_queue
from producer.brokers import BrokerUnavailable, BrokerView, DeadLetter, Depth, Placement, hard_limit
from producer.errors import UsageError

AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
SUBMITTED_KEY = "batt-run-submitted-{}"  # a Redis set in the result backend: task ids the broker confirmed


def _url_parts(url: str) -> urllib.parse.SplitResult:
    return urllib.parse.urlsplit(url)


def vhost_of(url: str) -> str:
    """The virtual host an AMQP URL names (kombu's reading: ``//`` and an empty path are ``/``)."""
    path = _url_parts(url).path
    vhost = urllib.parse.unquote(path[1:]) if path.startswith("/") else path
    return vhost or "/"


class RabbitMQ(BrokerView):
    """A RabbitMQ broker (``amqp://``, ``amqps://``)."""

    name = "RabbitMQ"
    per_sample = False

    # -- the mode choice -------------------------------------------------------------------------------------

    def _greet(self, timeout: float) -> None:
        """Send the AMQP greeting; refuse what answers it as something other than an AMQP 0-9-1 broker."""
        parts = _url_parts(self.url)
        host, port = parts.hostname or "localhost", parts.port or 5672
        try:
            with socket.create_connection((host, port), timeout=timeout) as s:
                s.settimeout(timeout)
                s.sendall(AMQP_HEADER)
                try:
                    reply = s.recv(8)
                except TimeoutError:
                    raise BrokerUnavailable(
                        f"{self.shown}: {host}:{port} accepted the connection but did not answer the AMQP greeting "
                        f"within {timeout:g}s (something other than RabbitMQ listening there, or an overloaded broker)"
                    ) from None
        except OSError as exc:
            raise BrokerUnavailable(f"{self.shown}: {exc}") from None
        if reply[:1] == b"\x01":  # a method frame: Connection.Start
            return
        what = f"it replied {reply[:8]!r}" if reply else "it closed the connection"
        if reply.startswith(b"AMQP"):
            what = f"it speaks another AMQP version ({reply!r})"
        raise UsageError(
            f"BATT_BROKER_URL {self.shown}: something other than RabbitMQ answers at {host}:{port} ({what}); "
            "fix the host or port"
        )

    def check(self, timeout: float) -> None:
        import amqp
        from kombu import Connection

        if _url_parts(self.url).scheme != "amqps":  # TLS would not answer a plain greeting
            self._greet(timeout)
        conn = Connection(self.url, connect_timeout=timeout, heartbeat=0, ssl=self.conf.broker_ssl())
        try:
            try:
                conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
            except amqp.exceptions.AccessRefused as exc:
                raise UsageError(
                    f"broker {self.shown} rejected the credentials ({exc.reply_text.split(' - ')[0]}); "
                    "fix the user and password in BATT_BROKER_URL"
                ) from None
            except amqp.exceptions.NotAllowed as exc:
                raise UsageError(
                    f"broker {self.shown} refused the virtual host {vhost_of(self.url)!r} ({exc.reply_text}); "
                    "create it (rabbitmqctl add_vhost) and grant the user access, or fix BATT_BROKER_URL"
                ) from None
            except Exception as exc:  # noqa: BLE001 - any other failure to connect means: no broker here
                from batt_tasks.scoring import one_line

                self._refuse_certificate(exc)
                raise BrokerUnavailable(f"{self.shown}: {one_line(exc)}") from None
            self._declare(conn)  # the queues as this producer needs them, or a usage error now, before any run
        finally:
            conn.release()

    def _refuse_certificate(self, exc: BaseException) -> None:
        """A :class:`UsageError` when ``exc`` (or what caused it) is a TLS certificate the client did not accept."""
        import ssl

        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            return
        ca = self.conf.broker_ca_file or "the system's CAs (BATT_BROKER_CA_FILE unset)"
        why = str(getattr(cause, "verify_message", "") or cause).rstrip(".")
        raise UsageError(
            f"broker {self.shown}: its TLS certificate was not accepted ({why}; trusted: {ca}); "
            "set BATT_BROKER_CA_FILE to the CA certificate that signed the broker's, and use a host name "
            "the certificate names in BATT_BROKER_URL"
        ) from None

    def check_time_limit(self, time_limit: float, warn: Callable[[str], None]) -> None:
        """Warn when a sample could outlast the broker's consumer timeout.

        RabbitMQ closes the channel of a consumer that holds a delivery unacknowledged longer than its
        ``consumer_timeout`` (30 min by default); the sample then goes back to the queue and runs again.
        RabbitMQ 3.x does not tell clients that value, so it is ``BATT_BROKER_CONSUMER_TIMEOUT``.
        """
        needed = 2 * hard_limit(time_limit)
        allowed = self.conf.broker_consumer_timeout
        if needed > allowed:
            warn(
                f"warning: -t {time_limit:g} lets a sample hold its delivery up to {needed:.0f} s, beyond the "
                f"broker's consumer_timeout ({allowed:.0f} s, BATT_BROKER_CONSUMER_TIMEOUT): such a sample would "
                "be taken from its worker and run again; raise consumer_timeout in rabbitmq.conf (and "
                "BATT_BROKER_CONSUMER_TIMEOUT), or lower -t"
            )

    # -- topology --------------------------------------------------------------------------------------------

    def prepare(self, app: Any) -> None:
        """Declare the sample queue and the dead-letter queue (idempotent) before anything is published."""
        with app.connection_for_write() as conn:
            self._declare(conn)

    def _declare(self, conn: Any) -> None:
        """Declare both queues; one of that name declared with other arguments (a classic ``batt`` queue from
        before, another ``BATT_DELIVERY_LIMIT``) is refused by RabbitMQ: a :class:`UsageError` saying how to
        replace it."""
        import amqp

        try:
            for queue in (sample_queue(self.conf.delivery_limit), dead_letter_queue()):
                queue(conn.channel()).declare()
        except amqp.exceptions.PreconditionFailed as exc:
            raise UsageError(
                f"broker {self.shown}: a queue exists with other arguments ({exc.reply_text}); "
                f"BATT_DELIVERY_LIMIT must be the same everywhere (it is {self.conf.delivery_limit}); to change "
                "the queue, stop the workers, let it drain, delete it (rabbitmqctl delete_queue -p VHOST batt) "
                "and start them again"
            ) from None

    # -- where samples are -----------------------------------------------------------------------------------

    def placement(self) -> Placement | None:
        return None

    def _management(self, path: str) -> Any | None:
        """GET a management API path (JSON), or None when the API is off or does not answer."""
        base = self.conf.rabbitmq_management_url
        if base.lower() == "off":
            return None
        parts = _url_parts(self.url)
        if not base:
            base = f"http://{parts.hostname or 'localhost'}:15672"
        user = urllib.parse.unquote(parts.username or "guest")
        password = urllib.parse.unquote(parts.password or "guest")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request = urllib.request.Request(base.rstrip("/") + path, headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=self.conf.broker_check_timeout) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def depth(self) -> Depth:
        """Ready messages and consumers over AMQP (exact, now); unacknowledged ones from the management API
        (its statistics lag by up to its collection interval, 5 s by default; unknown without the API)."""
        from kombu import Connection

        ready = consumers = dead = None
        with Connection(
            self.url, connect_timeout=self.conf.broker_check_timeout, heartbeat=0, ssl=self.conf.broker_ssl()
        ) as conn:
            with contextlib.suppress(Exception):  # no queue yet: nothing was submitted
                _, ready, consumers = conn.channel().queue_declare(QUEUE, passive=True)
            with contextlib.suppress(Exception):
                _, dead, _ = conn.channel().queue_declare(DEAD_LETTER_QUEUE, passive=True)
        vhost = urllib.parse.quote(vhost_of(self.url), safe="")
        info = self._management(f"/api/queues/{vhost}/{QUEUE}") or {}
        return Depth(ready, info.get("messages_unacknowledged"), consumers, dead)

    # -- what --resume needs ---------------------------------------------------------------------------------

    def record_submitted(self, app: Any, run_id: str, task_ids: Iterable[str]) -> None:
        ids = list(task_ids)
        if not ids:
            return
        client = app.backend.client
        key = SUBMITTED_KEY.format(run_id)
        with client.pipeline(transaction=False) as pipe:
            pipe.sadd(key, *ids).expire(key, self.conf.result_expires).execute()

    def submitted(self, app: Any, run_id: str) -> set[str] | None:
        members = app.backend.client.smembers(SUBMITTED_KEY.format(run_id))
        return {m.decode() if isinstance(m, bytes) else m for m in members}

    # -- dead letters ----------------------------------------------------------------------------------------

    def drain_dead_letters(self, app: Any, record: Callable[[DeadLetter], None], limit: int = 1000) -> int:
        """Take up to ``limit`` dead letters, ``record`` each, then acknowledge it; return how many."""
        taken = 0
        with app.connection_for_write() as conn:
            channel = conn.default_channel
            queue = dead_letter_queue()(channel)
            queue.declare()
            while taken < limit:
                message = queue.get(no_ack=False, accept=["json"])
                if message is None:
                    break
                headers = message.headers or {}
                task_id = headers.get("id")
                if task_id:
                    record(DeadLetter(str(task_id), str(headers.get("x-first-death-reason") or "unknown")))
                message.ack()
                taken += 1
        return taken
