"""The read-only lists of what happened and what waits: /log, /tasks, /charges, /runs,
/documents, and /settings."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from recoup.api.deps import PageDep, SessionDep, requires
from recoup.api.roles import Right
from recoup.charges import repository as charge_repository
from recoup.charges.schemas import ChargeRead
from recoup.core.schemas import Page
from recoup.documents import repository as document_repository
from recoup.documents.schemas import DocumentRead
from recoup.domain.enums import ChargeStatus, TaskStatus
from recoup.log import repository as log_repository
from recoup.log.schemas import LogEntryRead
from recoup.runs.history import list_runs
from recoup.runs.schemas import RunRead
from recoup.settings.schemas import SettingsRead
from recoup.settings.service import business_today, get_settings
from recoup.tasks import repository as task_repository
from recoup.tasks.schemas import WorkItemRead

router = APIRouter(dependencies=[Depends(requires(Right.read))])

Customer = Annotated[str | None, Query(description="A customer's id.")]


@router.get("/log", tags=["log"])
def log(
    session: SessionDep,
    page: PageDep,
    plan: Annotated[int | None, Query(description="A plan's id.")] = None,
    customer: Customer = None,
    invoice: Annotated[str | None, Query(description="An invoice's id.")] = None,
    event: str | None = None,
    since: Annotated[date | None, Query(description="From this business date.")] = None,
    until: Annotated[date | None, Query(description="Up to this business date.")] = None,
) -> Page[LogEntryRead]:
    """The log, in the order it was written."""
    filters = log_repository.LogFilter(
        plan_id=plan,
        customer_id=customer,
        invoice_id=invoice,
        event=event,
        since=since,
        until=until,
    )
    rows, next_cursor = log_repository.page(session, filters, cursor=page.cursor, limit=page.limit)
    return Page[LogEntryRead](
        items=[LogEntryRead.model_validate(row) for row in rows], next_cursor=next_cursor
    )


@router.get("/tasks", tags=["tasks"])
def tasks(
    session: SessionDep,
    page: PageDep,
    status: Annotated[
        TaskStatus | None, Query(description="Default: the tasks still waiting on someone.")
    ] = None,
    role: str | None = None,
    claimed_by: str | None = None,
    on: Annotated[
        date | None, Query(description="Business date for days overdue (default: today).")
    ] = None,
) -> Page[WorkItemRead]:
    """The work list, oldest first."""
    statuses = (status.value,) if status is not None else task_repository.WAITING
    items, next_cursor = task_repository.page(
        session,
        statuses=statuses,
        role=role,
        claimed_by=claimed_by,
        cursor=page.cursor,
        limit=page.limit,
        today=on or business_today(session),
    )
    return Page[WorkItemRead](
        items=[WorkItemRead.of(item) for item in items], next_cursor=next_cursor
    )


@router.get("/charges", tags=["charges"])
def charges(
    session: SessionDep,
    page: PageDep,
    customer: Customer = None,
    status: ChargeStatus | None = None,
) -> Page[ChargeRead]:
    """Charges, oldest first."""
    rows, next_cursor = charge_repository.page(
        session, customer_id=customer, status=status, cursor=page.cursor, limit=page.limit
    )
    return Page[ChargeRead](
        items=[ChargeRead.model_validate(row) for row in rows], next_cursor=next_cursor
    )


@router.get("/runs", tags=["runs"])
def runs(session: SessionDep, page: PageDep) -> Page[RunRead]:
    """The runs, newest first, with their counts."""
    return list_runs(session, limit=page.limit, starting_after=page.cursor)


@router.get("/documents", tags=["documents"])
def documents(
    session: SessionDep,
    page: PageDep,
    plan: Annotated[int | None, Query(description="A plan's id.")] = None,
    invoice: Annotated[str | None, Query(description="An invoice's id.")] = None,
    kind: str | None = None,
) -> Page[DocumentRead]:
    """Generated letters, newest first."""
    rows, next_cursor = document_repository.list_documents(
        session, plan_id=plan, invoice_id=invoice, kind=kind, cursor=page.cursor, limit=page.limit
    )
    return Page[DocumentRead](
        items=[DocumentRead.model_validate(row) for row in rows], next_cursor=next_cursor
    )


@router.get("/settings", tags=["settings"])
def settings(session: SessionDep) -> SettingsRead:
    """The installation's settings."""
    return SettingsRead.model_validate(get_settings(session))
