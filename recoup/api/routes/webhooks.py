"""/webhooks: the endpoints events are sent to (create, list, change, remove, rotate the
secret), their delivery logs, and sending a delivery again, through recoup.webhooks; the key's
name is the actor, `Recoup-Reason` the reason. See docs/api.md, "Receiving webhooks"."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Response, status

from recoup.api.deps import Actor, PageDep, ReasonHeader, SessionDep, requires
from recoup.api.roles import Right
from recoup.api.schemas import ListPage
from recoup.domain.enums import DeliveryStatus
from recoup.webhooks import endpoints, repository
from recoup.webhooks.schemas import (
    DeliveryRead,
    EndpointCreate,
    EndpointRead,
    EndpointRotate,
    EndpointSecret,
    EndpointUpdate,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

Reader = Depends(requires(Right.read))
Admin = Annotated[Actor, Depends(requires(Right.configure))]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_endpoint(
    body: EndpointCreate, session: SessionDep, actor: Admin, why: ReasonHeader = None
) -> EndpointSecret:
    """A new endpoint; it receives the events logged from now on. The answer holds its
    signing `secret`, shown this once."""
    endpoint, secret = endpoints.create_endpoint(
        session,
        url=body.url,
        events=body.events,
        description=body.description,
        active=body.active,
        actor=actor.name,
        reason=why,
    )
    return EndpointSecret.of(endpoint, secret)


@router.get("", dependencies=[Reader])
def list_endpoints(session: SessionDep, page: PageDep) -> ListPage[EndpointRead]:
    """The endpoints, oldest first; never their secrets."""
    rows, next_cursor = repository.endpoints_page(
        session,
        cursor=page.cursor(lambda id: [repository.get_endpoint_or_not_found(session, int(id)).id]),
        limit=page.limit,
        before=page.before,
    )
    return ListPage[EndpointRead].of([EndpointRead.model_validate(r) for r in rows], next_cursor)


@router.get("/{endpoint_id}", dependencies=[Reader])
def get_endpoint(endpoint_id: int, session: SessionDep) -> EndpointRead:
    return EndpointRead.model_validate(repository.get_endpoint_or_not_found(session, endpoint_id))


@router.patch("/{endpoint_id}")
def update_endpoint(
    endpoint_id: int,
    body: EndpointUpdate,
    session: SessionDep,
    actor: Admin,
    why: ReasonHeader = None,
) -> EndpointRead:
    """Change its URL (the deliveries still waiting go to the new one), events, description,
    or `active` (false: nothing is sent to it; true again: the events from then on)."""
    endpoint = repository.get_endpoint_or_not_found(session, endpoint_id)
    endpoints.update_endpoint(
        session,
        endpoint,
        url=body.url,
        events=body.events,
        description=body.description,
        active=body.active,
        actor=actor.name,
        reason=why,
    )
    return EndpointRead.model_validate(endpoint)


@router.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_endpoint(
    endpoint_id: int, session: SessionDep, actor: Admin, why: ReasonHeader = None
) -> Response:
    """Remove the endpoint; its delivery log stays (`PATCH active: false` keeps it)."""
    endpoint = repository.get_endpoint_or_not_found(session, endpoint_id)
    endpoints.delete_endpoint(session, endpoint, actor=actor.name, reason=why)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{endpoint_id}/rotate")
def rotate_secret(
    endpoint_id: int,
    session: SessionDep,
    actor: Admin,
    body: Annotated[EndpointRotate | None, Body()] = None,
    why: ReasonHeader = None,
) -> EndpointSecret:
    """A new signing secret, shown this once. For `overlap_hours` (default 24) deliveries
    carry a signature with the previous secret too; then it is dropped."""
    endpoint = repository.get_endpoint_or_not_found(session, endpoint_id)
    overlap = timedelta(hours=(body or EndpointRotate()).overlap_hours)
    secret = endpoints.rotate_secret(
        session, endpoint, overlap=overlap, actor=actor.name, reason=why
    )
    return EndpointSecret.of(endpoint, secret)


@router.get("/{endpoint_id}/deliveries", dependencies=[Reader])
def list_deliveries(
    endpoint_id: int,
    session: SessionDep,
    page: PageDep,
    status: DeliveryStatus | None = None,
) -> ListPage[DeliveryRead]:
    """The endpoint's deliveries, newest first: status, attempts, last response code and
    error."""
    repository.get_endpoint_or_not_found(session, endpoint_id)

    def key_of(delivery_id: str) -> list[int]:
        delivery = repository.get_delivery_or_not_found(session, int(delivery_id))
        if delivery.endpoint_id != endpoint_id:
            raise ValueError(delivery_id)
        return [delivery.id]

    rows, next_cursor = repository.endpoint_page(
        session,
        endpoint_id,
        status=status.value if status is not None else None,
        cursor=page.cursor(key_of),
        limit=page.limit,
        before=page.before,
    )
    return ListPage[DeliveryRead].of([DeliveryRead.model_validate(r) for r in rows], next_cursor)


@router.post("/deliveries/{delivery_id}/redeliver", status_code=status.HTTP_202_ACCEPTED)
def redeliver(
    delivery_id: int, session: SessionDep, actor: Admin, why: ReasonHeader = None
) -> DeliveryRead:
    """Queue a delivered or failed delivery again (same `webhook-id`, same body); the worker
    or the next run sends it. 409 while it is still waiting."""
    delivery = repository.get_delivery_or_not_found(session, delivery_id)
    endpoints.redeliver(session, delivery, actor=actor.name, reason=why)
    return DeliveryRead.model_validate(delivery)
