"""Posting JSON over HTTP: the body is serialised once, so the signature covers exactly the
bytes sent. Timeouts and connection errors are raised as `httpx.HTTPError` for the caller to
retry; any HTTP answer comes back as a `Response`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from recoup.domain.signature import SIGNATURE_HEADER, signature_header
from recoup.webhooks import signing

TIMEOUT = 10.0
USER_AGENT = "Recoup-Webhooks/1"
MAX_KEPT_BODY = 1000


@dataclass(frozen=True)
class Response:
    status_code: int
    text: str  # the start of the answer, for the result and the log

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        """Worth another attempt: a server error, a timeout or too many requests."""
        return self.status_code >= 500 or self.status_code in (408, 425, 429)

    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None

    def describe(self) -> str:
        snippet = " ".join(self.text.split())[:200]
        return f"HTTP {self.status_code}" + (f": {snippet}" if snippet else "")


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact JSON, UTF-8; amounts are already decimal strings (never floats)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def post_json(
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Response:
    all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    all_headers.update(headers or {})
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        answer = client.post(url, content=body, headers=all_headers)
        text = answer.text[:MAX_KEPT_BODY]
    return Response(answer.status_code, text)


def post_signed(
    url: str,
    payload: Mapping[str, Any],
    *,
    secret: str | None,
    now: datetime,
    headers: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
    message_id: str | None = None,
    signing_secrets: Sequence[str] = (),
) -> Response:
    """POST `payload` with `Recoup-Signature: t=<unix ts>,v1=<hmac>` keyed with `secret` (see
    domain.signature; left out without one) and, given a `message_id`, the Standard Webhooks
    headers signed with each of `signing_secrets` (see webhooks.signing). Both sign the same
    bytes at the same second."""
    body = encode(payload)
    timestamp = int(now.timestamp())
    signed: dict[str, str] = {}
    if secret:
        signed[SIGNATURE_HEADER] = signature_header(secret, timestamp, body)
    if message_id is not None:
        signed.update(signing.headers(signing_secrets, message_id, timestamp, body))
    signed.update(headers or {})
    return post_json(url, body, headers=signed, timeout=timeout)


__all__ = ["Response", "encode", "post_json", "post_signed"]
