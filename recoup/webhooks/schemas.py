"""The delivery log of outgoing events as every face shows it: one row per event and
endpoint. The endpoint's URL is shown without its credentials (issue 8.5)."""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from recoup.core.schemas import Schema, Timestamp
from recoup.domain.enums import DeliveryStatus
from recoup.domain.redact import redact_url


class DeliveryRead(Schema):
    id: int
    event: str
    event_id: str | None
    url: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: Timestamp | None
    plan_id: int | None
    created_at: Timestamp
    delivered_at: Timestamp | None

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, value: Any) -> Any:
        """A `webhook_deliveries` row: the event id from its payload, the URL redacted."""
        if isinstance(value, dict):
            return value
        fields = {name: getattr(value, name) for name in cls.model_fields if name != "event_id"}
        fields["event_id"] = (value.payload or {}).get("id")
        fields["url"] = redact_url(value.url)  # the listing shows the endpoint, not its token
        return {name: fields[name] for name in cls.model_fields}


__all__ = ["DeliveryRead"]
