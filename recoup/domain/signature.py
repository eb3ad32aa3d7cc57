"""Signing outgoing webhooks, the way Stripe does (SPEC §3 `webhook`, `retry_payment`; §5).

Every POST carries `Recoup-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` where the HMAC
key is the shared secret (RECOUP_WEBHOOK_SECRET) and the message is `f"{t}.{body}"`, body being
the exact bytes received. A receiver recomputes the HMAC over the raw body, compares it in
constant time with each `v1` value, and refuses timestamps too far from its clock (replays).
Pure: the caller passes the time.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Recoup-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE = 300  # seconds


def _as_bytes(body: str | bytes) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def compute_signature(secret: str, timestamp: int, body: str | bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + _as_bytes(body)
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: str | bytes) -> str:
    """The value of the Recoup-Signature header for `body` sent at `timestamp`."""
    return f"t={timestamp},{SCHEME}={compute_signature(secret, timestamp, body)}"


def parse_header(header: str) -> tuple[int | None, list[str]]:
    """The timestamp and the v1 signatures of a header (unknown schemes are ignored)."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return None, []
        elif key == SCHEME and value:
            signatures.append(value)
    return timestamp, signatures


def verify_signature(
    secret: str,
    header: str,
    body: str | bytes,
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE,
) -> bool:
    """True when `header` signs `body` with `secret` and its time is within `tolerance`."""
    timestamp, signatures = parse_header(header)
    if timestamp is None or not signatures:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = compute_signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)


__all__ = [
    "SIGNATURE_HEADER",
    "compute_signature",
    "parse_header",
    "signature_header",
    "verify_signature",
]
