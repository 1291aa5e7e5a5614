"""Signed sample messages: only a holder of the shared key decides what code a worker runs.

Workers import code named by sample messages (and bundles read from the result backend), so write
access to Redis alone must not be enough to run code on them. The producer signs, with HMAC-SHA256,
the fields of each message that decide what runs — the batt (bundle id and entry, or installed module
and its source hash), the run id and the sample — and a worker checks the signature with
:func:`hmac.compare_digest` before it fetches or imports anything.

The key is ``BATT_SIGNING_KEY``, or the contents of ``BATT_SIGNING_KEY_FILE``; with neither, a per-user
key file (``$XDG_CONFIG_HOME/batt-queue/signing.key``, default ``~/.config/…``) that the first process
to need it creates with mode 0600, so a producer and workers of one user on one machine agree with no
setup. A worker also accepts ``BATT_SIGNING_KEY_PREVIOUS`` during a key rotation.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batt_tasks.config import Settings


class SigningError(Exception):
    """No usable signing key; the message names the setting and the fix."""


@dataclass(frozen=True)
class Keys:
    """The key that signs, and the keys a signature may be made with (current first)."""

    current: bytes = field(repr=False)
    previous: tuple[bytes, ...] = field(default=(), repr=False)
    source: str = ""

    @property
    def accepted(self) -> tuple[bytes, ...]:
        return (self.current, *self.previous)


def default_key_file() -> Path:
    """The per-user key file used when neither BATT_SIGNING_KEY nor BATT_SIGNING_KEY_FILE is set."""
    base = os.environ.get("XDG_CONFIG_HOME", "").strip() or str(Path.home() / ".config")
    return Path(base) / "batt-queue" / "signing.key"


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise SigningError(f"{what} {path} cannot be read ({exc.strerror}); fix the path or its permissions") from None
    if len(key) < 16:
        raise SigningError(f"{what} {path} holds {len(key)} bytes; put a key of at least 16 characters in it")
    return key


def _own_key_file(path: Path) -> bytes:
    """Read the per-user key file, creating it (0600, whole or not at all) when it does not exist."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)  # fails if another process created it first: then both use that one
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return _read_key_file(path, "signing key file")


def resolve_keys(conf: Settings) -> Keys:
    """The signing keys the settings name (see the module docstring for the order)."""
    previous = tuple(k.strip().encode() for k in conf.signing_key_previous.split(",") if k.strip())
    if conf.signing_key:
        key = conf.signing_key.encode()
        if len(key) < 16:
            raise SigningError(f"BATT_SIGNING_KEY has {len(key)} characters; use at least 16 (openssl rand -hex 32)")
        return Keys(key, previous, "BATT_SIGNING_KEY")
    if conf.signing_key_file:
        path = Path(conf.signing_key_file).expanduser()
        return Keys(_read_key_file(path, "BATT_SIGNING_KEY_FILE"), previous, f"BATT_SIGNING_KEY_FILE={path}")
    path = default_key_file()
    return Keys(_own_key_file(path), previous, f"the per-user key file {path}")


def signed_fields(message: Mapping[str, Any]) -> bytes:
    """The canonical bytes of the fields that decide what a message runs."""
    fields = {
        "batt": message.get("batt"),
        "run_id": message.get("run_id"),
        "sample": [message.get("task_id"), message.get("kind"), message.get("index")],
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def sign(message: Mapping[str, Any], keys: Keys) -> str:
    """The message's signature (hex HMAC-SHA256 with the current key)."""
    return hmac.new(keys.current, signed_fields(message), hashlib.sha256).hexdigest()


def verify(message: Mapping[str, Any], keys: Keys) -> bool:
    """Whether the message carries a valid signature by one of the accepted keys."""
    sig = message.get("sig")
    if not isinstance(sig, str):
        return False
    body = signed_fields(message)
    ok = False
    for key in keys.accepted:  # no early exit: every key is tried, whichever matches
        ok |= hmac.compare_digest(hmac.new(key, body, hashlib.sha256).hexdigest(), sig)
    return ok
