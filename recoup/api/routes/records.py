"""The read-only lists of what happened and what waits: /log, /tasks, /charges, /runs,
/documents, and /settings."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from recoup.api.deps import PageDep, SessionDep, requires
from recoup.api.roles import Right
from recoup.api.schemas import ListPage
from recoup.charges import repository as charge_repository
from recoup.charges.schemas import ChargeRead
from recoup.core.schemas import decode_id_cursor, encode_cursor
from recoup.documents import repository as document_repository
from recoup.documents.schemas import DocumentRead
from recoup.domain.enums import ChargeStatus, TaskStatus
from recoup.log import repository as log_repository
from recoup.log.schemas import LogEntryRead
from recoup.runs import repository as run_repository
from recoup.runs.history import list_runs
from recoup.runs.schemas import RunRead
from recoup.settings.schemas import SettingsRead
from recoup.settings.service import business_today, get_settings
from recoup.tasks import repository as task_repository
from recoup.tasks.schemas import WorkItemRead

router = APIRouter(dependencies=[Depends(requires(Right.read))])

Customer = Annotated[str | None, Query(description="A customer's id.")]

# the log's entries have no id to continue after (or before): its pages hand out opaque
# cursors here, for `starting_after` (the page after) and `ending_before` (the page before)
NEXT_CURSOR = "Recoup-Next-Cursor"
PREVIOUS_CURSOR = "Recoup-Previous-Cursor"


@router.get("/log", tags=["log"])
def log(
    session: SessionDep,
    page: PageDep,
    response: Response,
    plan: Annotated[int | None, Query(description="A plan's id.")] = None,
    customer: Customer = None,
    invoice: Annotated[str | None, Query(description="An invoice's id.")] = None,
    event: str | None = None,
    since: Annotated[date | None, Query(description="From this business date.")] = None,
    until: Annotated[date | None, Query(description="Up to this business date.")] = None,
) -> ListPage[LogEntryRead]:
    """The log, in the order it was written. Its entries have no id (SPEC §5): the page after
    this one is `starting_after=` the `Recoup-Next-Cursor` header this page answered with (when
    there is one), the page before it `ending_before=` its `Recoup-Previous-Cursor`."""
    filters = log_repository.LogFilter(
        plan_id=plan,
        customer_id=customer,
        invoice_id=invoice,
        event=event,
        since=since,
        until=until,
    )
    cursor = page.given
    if cursor is not None:  # checked here so the problem names the API's parameter
        decode_id_cursor(cursor, page.field)
    rows, more = log_repository.page(
        session, filters, cursor=cursor, limit=page.limit, before=page.before
    )
    # read after a cursor (or from the start), `more` says whether a page follows, and the
    # cursor's entry precedes; read before one, `more` says whether a page precedes, and the
    # cursor's entry follows
    more_after, more_before = (
        (True, more is not None) if page.before else (more is not None, cursor is not None)
    )
    if rows and more_after:
        response.headers[NEXT_CURSOR] = encode_cursor([rows[-1].id])
    if rows and more_before:
        response.headers[PREVIOUS_CURSOR] = encode_cursor([rows[0].id])
    return ListPage[LogEntryRead].of([LogEntryRead.model_validate(row) for row in rows], more)


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
) -> ListPage[WorkItemRead]:
    """The work list, oldest first."""

    def key_of(task_id: str) -> list[object]:
        task = task_repository.get_or_not_found(session, int(task_id))
        return [task.created_on, task.created_at, task.id]

    statuses = (status.value,) if status is not None else task_repository.WAITING
    items, next_cursor = task_repository.page(
        session,
        statuses=statuses,
        role=role,
        claimed_by=claimed_by,
        cursor=page.cursor(key_of),
        limit=page.limit,
        today=on or business_today(session),
        before=page.before,
    )
    return ListPage[WorkItemRead].of([WorkItemRead.of(item) for item in items], next_cursor)


@router.get("/charges", tags=["charges"])
def charges(
    session: SessionDep,
    page: PageDep,
    customer: Customer = None,
    status: ChargeStatus | None = None,
) -> ListPage[ChargeRead]:
    """Charges, oldest first."""
    cursor = page.cursor(lambda id: [charge_repository.get_or_not_found(session, int(id)).id])
    rows, next_cursor = charge_repository.page(
        session,
        customer_id=customer,
        status=status,
        cursor=cursor,
        limit=page.limit,
        before=page.before,
    )
    return ListPage[ChargeRead].of([ChargeRead.model_validate(row) for row in rows], next_cursor)


@router.get("/runs", tags=["runs"])
def runs(session: SessionDep, page: PageDep) -> ListPage[RunRead]:
    """The runs, newest first, with their counts."""
    cursor = page.cursor(lambda id: [run_repository.get_or_not_found(session, int(id)).id])
    runs = list_runs(session, limit=page.limit, starting_after=cursor, before=page.before)
    return ListPage[RunRead].of(runs.items, runs.next_cursor)


@router.get("/documents", tags=["documents"])
def documents(
    session: SessionDep,
    page: PageDep,
    plan: Annotated[int | None, Query(description="A plan's id.")] = None,
    invoice: Annotated[str | None, Query(description="An invoice's id.")] = None,
    kind: str | None = None,
) -> ListPage[DocumentRead]:
    """Generated letters, newest first."""

    def key_of(document_id: str) -> list[object]:
        document = document_repository.get_or_not_found(session, int(document_id))
        return [document.created_at.isoformat(), document.id]

    rows, next_cursor = document_repository.list_documents(
        session,
        plan_id=plan,
        invoice_id=invoice,
        kind=kind,
        cursor=page.cursor(key_of),
        limit=page.limit,
        before=page.before,
    )
    return ListPage[DocumentRead].of(
        [DocumentRead.model_validate(row) for row in rows], next_cursor
    )


@router.get("/settings", tags=["settings"])
def settings(session: SessionDep) -> SettingsRead:
    """The installation's settings."""
    return SettingsRead.model_validate(get_settings(session))
