"""A webhook receiver's check, written from the Standard Webhooks specification (not from
Recoup's code, so the two can disagree): the signed content is "{webhook-id}.{webhook-timestamp}.
{raw body}", the key the base64-decoded part of the `whsec_` secret, the signature base64 HMAC-
SHA256, `webhook-signature` a space-separated list of "v1,<sig>"; timestamps more than 5 minutes
away are refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

TOLERANCE = 5 * 60


class Refused(Exception):
    pass


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, now: int) -> None:
    """Raise Refused unless the request is signed with `secret` and recent (headers by their
    lower-case names, as tests.http_recorder keeps them)."""
    try:
        msg_id = headers["webhook-id"]
        timestamp = headers["webhook-timestamp"]
        signatures = headers["webhook-signature"]
    except KeyError as missing:
        raise Refused(f"missing header {missing}") from None
    if abs(now - int(timestamp)) > TOLERANCE:
        raise Refused("timestamp too far from now")
    if not secret.startswith("whsec_"):
        raise Refused("not a Standard Webhooks secret")
    key = base64.b64decode(secret[len("whsec_") :])
    content = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    for candidate in signatures.split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected.encode()):
            return
    raise Refused("no matching signature")


def verifies(secret: str, headers: Mapping[str, str], body: bytes, *, now: int) -> bool:
    try:
        verify(secret, headers, body, now=now)
    except Refused:
        return False
    return True
