"""/plans: the listing (filters, cursor pages), one plan with its parts; pause, resume, stop
(recoup.plans.service) and a promise to pay (recoup.plans.promise); the manual actions the
plan's level allows, and doing one (recoup.actions.manual). The key's name is the actor."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request

from recoup.actions.manual import ManualKind, manual_options, perform_manual_action
from recoup.actions.schemas import ManualActionCreate, ManualActionRead, ManualOptionRead
from recoup.api.deps import Actor, PageDep, ReasonHeader, SessionDep, requires
from recoup.api.roles import Right
from recoup.api.routes.operations import EnvDep, FactoryDep, end_request_writes
from recoup.api.schemas import ListPage, PlanResume
from recoup.core.requests import in_read
from recoup.core.sessions import Session
from recoup.domain.enums import PlanStatus
from recoup.plans import promise, repository, service
from recoup.plans.schemas import PlanDetail, PlanPause, PlanRead, PlanStop, PromiseCreate
from recoup.settings.service import business_today

router = APIRouter(prefix="/plans", tags=["plans"])

Reader = Depends(requires(Right.read))
Operator = Annotated[Actor, Depends(requires(Right.operate))]


# async, their database work awaited on the event loop (recoup.core.requests.in_read): the
# two reads a billing system or a finance tool polls most
@router.get("", dependencies=[Reader])
async def list_plans(
    request: Request,
    page: PageDep,
    status: PlanStatus | None = None,
    customer: Annotated[str | None, Query(description="A customer's id.")] = None,
    policy: Annotated[str | None, Query(description="A policy's name.")] = None,
    level: str | None = None,
    currency: Annotated[str | None, Query(min_length=3, max_length=3)] = None,
    min_days_overdue: Annotated[
        int | None,
        Query(description="Open plans at least this many days overdue (rule R1 in docs/rules.md)."),
    ] = None,
    max_days_overdue: Annotated[
        int | None,
        Query(description="Open plans at most this many days overdue (rule R1 in docs/rules.md)."),
    ] = None,
) -> ListPage[PlanRead]:
    """Plans, newest first. Days overdue (R1: from the due date, less the days paused) are
    counted on today's business date; only an open plan has them."""
    by_days = min_days_overdue is not None or max_days_overdue is not None

    def read(session: Session) -> ListPage[PlanRead]:
        rows, next_cursor = repository.page(
            session,
            status=status,
            customer_id=customer,
            policy=policy,
            level=level,
            currency=currency,
            min_days_overdue=min_days_overdue,
            max_days_overdue=max_days_overdue,
            today=business_today(session) if by_days else None,
            cursor=page.cursor(lambda id: [repository.get_or_not_found(session, int(id)).id]),
            limit=page.limit,
            before=page.before,
        )
        return ListPage[PlanRead].of(PlanRead.from_rows(rows), next_cursor)

    return await in_read(request, read)


@router.get("/{plan_id}", dependencies=[Reader])
async def get_plan(plan_id: int, request: Request) -> PlanDetail:
    """One plan with its invoices, actions, tasks, charges, letters and log."""
    return await in_read(
        request, lambda session: PlanDetail.of(repository.get_parts(session, plan_id))
    )


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


@router.post("/{plan_id}/promise")
def promise_plan(
    plan_id: int,
    body: PromiseCreate,
    session: SessionDep,
    actor: Operator,
    why: ReasonHeader = None,
) -> PlanDetail:
    """Record a promise to pay (R10): the plan pauses until `until`; paid in time it closes
    recovered, else it resumes then, logs promise_broken and escalates. `amount` (a decimal
    string) defaults to the whole balance; `note` (else Recoup-Reason) goes to the log."""
    amount = promise.parse_promised_amount(body.amount)
    plan = repository.get_or_not_found(session, plan_id)
    promise.make_promise(
        session,
        plan,
        until=body.until,
        on=business_today(session),
        amount=amount,
        actor=actor.name,
        note=body.note or why,
    )
    return _detail(session, plan_id)


@router.get("/{plan_id}/actions", dependencies=[Reader])
def plan_actions(plan_id: int, session: SessionDep) -> ListPage[ManualOptionRead]:
    """The manual actions (email, letter, status) and whether the plan's current level allows
    each now: the level's action it would use, or why not."""
    plan = repository.get_or_not_found(session, plan_id)
    options = [ManualOptionRead.model_validate(o) for o in manual_options(session, plan)]
    return ListPage[ManualOptionRead].of(options, None)


@router.post("/{plan_id}/actions/{kind}")
def do_plan_action(
    plan_id: int,
    kind: ManualKind,
    session: SessionDep,
    actor: Operator,
    factory: FactoryDep,
    env: EnvDep,
    body: Annotated[ManualActionCreate | None, Body()] = None,
    why: ReasonHeader = None,
) -> ManualActionRead:
    """Do a manual action now: send an email (`email`), generate a letter (`letter`), change
    the account status (`status`), with the current level's action (409 when the level has
    none, or the plan is closed). It runs at once, through the runner: `status` says how it
    ended (done, skipped, failed, or pending: a worker retries it at `next_attempt_at`)."""
    body = body or ManualActionCreate()
    repository.get_or_not_found(session, plan_id)
    end_request_writes(session)  # the action owns its transactions (SQLite: one writer)
    outcome = perform_manual_action(
        factory,
        plan_id,
        kind,
        actor=actor.name,
        env=env,
        template=body.template,
        status=body.status,
        reason=why,
    )
    return ManualActionRead.model_validate(outcome)
