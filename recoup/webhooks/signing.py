"""Standard Webhooks signatures (SPEC §6; https://www.standardwebhooks.com): each delivery
carries

    webhook-id: msg_<delivery id>          the same on every retry and redelivery
    webhook-timestamp: <unix seconds>      when this attempt was sent
    webhook-signature: v1,<sig> [v1,<sig>] base64 HMAC-SHA256 of "{id}.{timestamp}.{body}"

keyed with the endpoint's secret (`whsec_` + base64: the key is the base64-decoded part), one
`v1,` signature per secret in force: two during a rotation's overlap. Pure: the caller passes
the secrets and the time. `Recoup-Signature` (recoup.domain.signature) is sent beside it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

from recoup.models import new_webhook_secret

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"
VERSION = "v1"

new_secret = new_webhook_secret


def message_id(delivery_id: int) -> str:
    """The `webhook-id` of a delivery: stable, so a receiver drops what it already handled."""
    return f"msg_{delivery_id}"


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: a `whsec_` secret's base64-decoded bytes, as the Standard
    Webhooks libraries read it; any other text (an installation's RECOUP_WEBHOOK_SECRET) as its
    UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            pass  # not base64 after all: signed with its text, like any other secret
    return secret.encode("utf-8")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of `body` sent as `msg_id` at `timestamp`."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(digest).decode('ascii')}"


def headers(secrets: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with each secret (newest first)."""
    signatures = " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signatures,
    }


__all__ = [
    "ID_HEADER",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "headers",
    "message_id",
    "new_secret",
    "secret_key",
    "sign",
]
