"""/plans: the listing (filters, cursor pages), one plan with its parts, and pause, resume and
stop through recoup.plans.service, the key's name as the actor."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query

from recoup.api.deps import Actor, PageDep, ReasonHeader, SessionDep, requires
from recoup.api.roles import Right
from recoup.api.schemas import ListPage, PlanResume
from recoup.domain.enums import PlanStatus
from recoup.plans import repository, service
from recoup.plans.schemas import PlanDetail, PlanPause, PlanRead, PlanStop
from recoup.settings.service import business_today

router = APIRouter(prefix="/plans", tags=["plans"])

Reader = Depends(requires(Right.read))
Operator = Annotated[Actor, Depends(requires(Right.operate))]


@router.get("", dependencies=[Reader])
def list_plans(
    session: SessionDep,
    page: PageDep,
    status: PlanStatus | None = None,
    customer: Annotated[str | None, Query(description="A customer's id.")] = None,
    policy: Annotated[str | None, Query(description="A policy's name.")] = None,
    level: str | None = None,
    currency: Annotated[str | None, Query(min_length=3, max_length=3)] = None,
) -> ListPage[PlanRead]:
    """Plans, newest first."""
    rows, next_cursor = repository.page(
        session,
        status=status,
        customer_id=customer,
        policy=policy,
        level=level,
        currency=currency,
        cursor=page.cursor(lambda id: [repository.get_or_not_found(session, int(id)).id]),
        limit=page.limit,
    )
    return ListPage[PlanRead].of([PlanRead.model_validate(row) for row in rows], next_cursor)


@router.get("/{plan_id}", dependencies=[Reader])
def get_plan(plan_id: int, session: SessionDep) -> PlanDetail:
    """One plan with its invoices, actions, tasks, charges, letters and log."""
    return PlanDetail.of(repository.get_parts(session, plan_id))


def _detail(session: SessionDep, plan_id: int) -> PlanDetail:
    session.flush()
    return PlanDetail.of(repository.get_parts(session, plan_id))


@router.post("/{plan_id}/pause")
def pause_plan(plan_id: int, body: PlanPause, session: SessionDep, actor: Operator) -> PlanDetail:
    """Pause an active plan (R10); with `until`, it resumes by itself on that date."""
    plan = repository.get_or_not_found(session, plan_id)
    service.pause_plan(
        session,
        plan,
        reason=body.reason,
        until=body.until,
        on=business_today(session),
        actor=actor.name,
    )
    return _detail(session, plan_id)


@router.post("/{plan_id}/resume")
def resume_plan(
    plan_id: int,
    session: SessionDep,
    actor: Operator,
    body: Annotated[PlanResume | None, Body()] = None,
    why: ReasonHeader = None,
) -> PlanDetail:
    """Resume a paused plan; why: the body's `reason`, else the Recoup-Reason header."""
    plan = repository.get_or_not_found(session, plan_id)
    reason = body.reason if body is not None else why or PlanResume().reason
    service.resume_plan(session, plan, on=business_today(session), actor=actor.name, reason=reason)
    return _detail(session, plan_id)


@router.post("/{plan_id}/stop")
def stop_plan(plan_id: int, body: PlanStop, session: SessionDep, actor: Operator) -> PlanDetail:
    """Stop a plan for good."""
    plan = repository.get_or_not_found(session, plan_id)
    service.stop_plan(
        session, plan, reason=body.reason, on=business_today(session), actor=actor.name
    )
    return _detail(session, plan_id)
