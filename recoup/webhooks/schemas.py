"""The endpoints and the delivery log of outgoing events as every face shows them: one
delivery per event and endpoint. URLs are shown without their credentials (issue 8.5); an
endpoint's secret only once, when it is made (`EndpointSecret`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from recoup.core.schemas import Schema, Timestamp
from recoup.domain.enums import DeliveryStatus, WebhookEvent
from recoup.domain.redact import redact_url
from recoup.webhooks.signing import message_id

MAX_OVERLAP_HOURS = 24 * 30
DEFAULT_OVERLAP_HOURS = 24


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
    endpoint_id: int | None = None
    webhook_id: str | None = None  # the `webhook-id` header it is sent with

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, value: Any) -> Any:
        """A `webhook_deliveries` row: the event id from its payload, the URL redacted."""
        if isinstance(value, dict):
            return value
        derived = ("event_id", "webhook_id")
        fields = {name: getattr(value, name) for name in cls.model_fields if name not in derived}
        fields["event_id"] = (value.payload or {}).get("id")
        fields["webhook_id"] = message_id(value.id)
        fields["url"] = redact_url(value.url)  # the listing shows the endpoint, not its token
        return {name: fields[name] for name in cls.model_fields}


class EndpointRead(Schema):
    """An endpoint, without its secret."""

    id: int
    url: str
    events: list[str]
    active: bool
    description: str | None
    created_at: Timestamp
    # during a rotation's overlap: until when the previous secret also signs
    previous_secret_expires_at: Timestamp | None

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return value
        fields = {name: getattr(value, name) for name in cls.model_fields}
        fields["url"] = redact_url(value.url)
        fields["events"] = list(value.events or [])
        if value.previous_secret is None:
            fields["previous_secret_expires_at"] = None
        return fields


class EndpointSecret(EndpointRead):
    """An endpoint and its new secret: answered once, at creation and at each rotation."""

    secret: str

    @classmethod
    def of(cls, endpoint: Any, secret: str) -> EndpointSecret:
        return cls.model_validate(
            {**EndpointRead.model_validate(endpoint).model_dump(), "secret": secret}
        )


class EndpointCreate(Schema):
    url: str = Field(min_length=1, max_length=1000, description="An http(s) URL.")
    events: list[WebhookEvent] | None = Field(
        default=None, description="The events it receives (default: every event)."
    )
    description: str | None = Field(default=None, max_length=500)
    active: bool = True


class EndpointUpdate(Schema):
    url: str | None = Field(default=None, min_length=1, max_length=1000)
    events: list[WebhookEvent] | None = None
    description: str | None = Field(default=None, max_length=500)
    active: bool | None = None


class EndpointRotate(Schema):
    overlap_hours: int = Field(
        default=DEFAULT_OVERLAP_HOURS,
        ge=0,
        le=MAX_OVERLAP_HOURS,
        description="How long the previous secret also signs (0: it stops at once).",
    )


__all__ = [
    "DEFAULT_OVERLAP_HOURS",
    "DeliveryRead",
    "EndpointCreate",
    "EndpointRead",
    "EndpointRotate",
    "EndpointSecret",
    "EndpointUpdate",
    "MAX_OVERLAP_HOURS",
]
