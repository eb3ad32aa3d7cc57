"""Operating Recoup over HTTP: the late-invoice list, one task and its claim, completion and
release, waiving and exporting a charge, one document and its PDF, starting a run (in the
background) and following it, and explain. Thin over the same services as the CLI; writes
log the key's name as the actor, and the Recoup-Reason header when given."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from recoup.api.deps import Actor, PageDep, ReasonHeader, SessionDep, requires
from recoup.api.errors import Forbidden
from recoup.api.roles import Right
from recoup.api.schemas import ListPage
from recoup.apikeys.schemas import Role
from recoup.charges import repository as charge_repository
from recoup.charges import service as charge_service
from recoup.charges.schemas import ChargeRead, ChargeWaive
from recoup.core.clock import utc_now
from recoup.core.env import EnvConfig, load_env
from recoup.core.errors import InvalidInput
from recoup.core.responses import pdf_response
from recoup.core.sessions import Session, SessionFactory
from recoup.documents import repository as document_repository
from recoup.documents.schemas import DocumentRead
from recoup.documents.service import read_document_pdf
from recoup.domain.enums import PlanStatus
from recoup.plans import repository as plan_repository
from recoup.plans.promise import parse_promised_amount, promise_for_task
from recoup.plans.schemas import LateInvoiceRead
from recoup.runs.background import start_run
from recoup.runs.explain import explain_invoice
from recoup.runs.history import run_detail
from recoup.runs.schemas import ExplanationRead, RunCreate, RunDetailRead
from recoup.settings.service import business_today
from recoup.tasks import repository as task_repository
from recoup.tasks.schemas import TaskComplete, TaskDetailRead
from recoup.tasks.service import claim_task, complete_task, release_task

router = APIRouter()

Reader = Depends(requires(Right.read))
Operator = Annotated[Actor, Depends(requires(Right.operate))]

# a letter is a few pages; anything much larger in the documents folder is not one of ours


# --- what routes that own their transactions need --------------------------------------------


def edge_env(request: Request) -> EnvConfig:
    """The process's configuration (RECOUP_*), on the app's database."""
    return replace(load_env(), database_url=request.app.state.database_url)


def edge_factory(request: Request) -> SessionFactory:
    """The app's session factory, for work that owns its transactions (a run, an action)."""
    factory: SessionFactory = request.app.state.session_factory
    return factory


EnvDep = Annotated[EnvConfig, Depends(edge_env)]
FactoryDep = Annotated[SessionFactory, Depends(edge_factory)]


def end_request_writes(session: Session) -> None:
    """Commit what the request wrote so far (the key's last use) before work that owns its own
    transactions: on SQLite a second writer would wait for this one, which waits for it."""
    session.commit()


# --- the late-invoice list ---------------------------------------------------------------


LATE_STATUSES = [*(s.value for s in PlanStatus), plan_repository.NOT_IN_PLAN]


@router.get("/late-invoices", tags=["plans"], dependencies=[Reader])
def late_invoices(
    session: SessionDep,
    page: PageDep,
    status: Annotated[
        str | None,
        Query(
            description="Dunning status: a plan status (active, paused, recovered, "
            "unrecovered, stopped), or none (no plan covers the invoice).",
            pattern="^(" + "|".join(LATE_STATUSES) + ")$",
        ),
    ] = None,
    level: Annotated[str | None, Query(description="The plan's current level.")] = None,
    policy: Annotated[str | None, Query(description="The plan's policy (its name).")] = None,
    currency: Annotated[str | None, Query(min_length=3, max_length=3)] = None,
    customer: Annotated[str | None, Query(description="A customer's id.")] = None,
    search: Annotated[
        str | None, Query(description="Text in the invoice's id or number or the customer's name.")
    ] = None,
    min_days_overdue: Annotated[
        int | None, Query(ge=1, description="At least this many days past the due date.")
    ] = None,
    max_days_overdue: Annotated[
        int | None, Query(ge=1, description="At most this many days past the due date.")
    ] = None,
    on: Annotated[date | None, Query(description="Business date (default: today).")] = None,
) -> ListPage[LateInvoiceRead]:
    """Every late invoice (open or partially paid, past its due date), oldest due first, each
    with its dunning status ("payment in plan"): the latest plan covering it, its status,
    level, policy and next step date; `plan_status` none when no plan covers it."""
    today = on or business_today(session)
    filters = plan_repository.LateFilter(
        today=today,
        status=status,
        level=level,
        policy=policy,
        currency=currency,
        customer_id=customer,
        search=search,
        min_days_overdue=min_days_overdue,
        max_days_overdue=max_days_overdue,
    )
    cursor = page.cursor(lambda id: plan_repository.late_cursor(session, id))
    rows, next_cursor = plan_repository.late_invoices(
        session, filters, cursor=cursor, limit=page.limit, before=page.before
    )
    return ListPage[LateInvoiceRead].of(
        [LateInvoiceRead.of(row, today) for row in rows], next_cursor
    )


# --- tasks -------------------------------------------------------------------------------


def _task_detail(session: Session, task_id: int) -> TaskDetailRead:
    session.flush()
    today = business_today(session)
    detail = task_repository.task_detail(session, task_id, today=today)
    return TaskDetailRead.of_detail(
        detail, waited=task_repository.waited(detail.item.task, today, utc_now())
    )


def _check_role(actor: Actor, role: str, task_id: int) -> None:
    """A collector's key works on the tasks for its role (the action's `role`, SPEC §1);
    an admin's on any."""
    if actor.role != Role.admin and role != actor.role:
        raise Forbidden(f"task {task_id} is for the role {role}: the key's role is {actor.role}")


@router.get("/tasks/{task_id}", tags=["tasks"], dependencies=[Reader])
def get_task(task_id: int, session: SessionDep) -> TaskDetailRead:
    """One task: its plan, customer, invoices, balance, instructions and history."""
    return _task_detail(session, task_id)


@router.post("/tasks/{task_id}/claim", tags=["tasks"])
def claim(
    task_id: int, session: SessionDep, actor: Operator, why: ReasonHeader = None
) -> TaskDetailRead:
    """Take an open task (409 when someone has it, or it is done); for the key's role."""
    task = task_repository.get_or_not_found(session, task_id)
    _check_role(actor, task.role, task_id)
    claim_task(session, task, user=actor.name, on=business_today(session), reason=why)
    return _task_detail(session, task_id)


@router.post("/tasks/{task_id}/complete", tags=["tasks"])
def complete(
    task_id: int,
    body: TaskComplete,
    session: SessionDep,
    actor: Operator,
    why: ReasonHeader = None,
) -> TaskDetailRead:
    """Complete a task with a `note` (what was done), or with a promise to pay: `promise` (a
    date) and optionally `amount` (a decimal string; default the balance), which pauses the
    plan until then (R10). A task another key has claimed is a 409."""
    if body.amount is not None and body.promise is None:
        raise InvalidInput("{field} goes with a promise date", field="amount")
    amount = parse_promised_amount(body.amount)
    task = task_repository.get_or_not_found(session, task_id)
    _check_role(actor, task.role, task_id)
    day = business_today(session)
    complete_task(session, task, user=actor.name, on=day, outcome=body.note, reason=why)
    if body.promise is not None:
        promise_for_task(session, task, until=body.promise, on=day, amount=amount, actor=actor.name)
    return _task_detail(session, task_id)


@router.post("/tasks/{task_id}/release", tags=["tasks"])
def release(
    task_id: int, session: SessionDep, actor: Operator, why: ReasonHeader = None
) -> TaskDetailRead:
    """Give a claimed task back: open again, for anyone of its role (409 unless claimed)."""
    task = task_repository.get_or_not_found(session, task_id)
    _check_role(actor, task.role, task_id)
    release_task(session, task, user=actor.name, on=business_today(session), note=why)
    return _task_detail(session, task_id)


# --- charges -----------------------------------------------------------------------------


@router.post("/charges/{charge_id}/waive", tags=["charges"])
def waive(charge_id: int, body: ChargeWaive, session: SessionDep, actor: Operator) -> ChargeRead:
    """Forgive a charge, saying why: no longer owed (logged charge_waived). Once only: a
    waived charge is a 409."""
    charge = charge_repository.get_or_not_found(session, charge_id)
    charge_service.waive_charge(
        session, charge, reason=body.reason, actor=actor.name, on=business_today(session)
    )
    return ChargeRead.model_validate(charge)


@router.post("/charges/{charge_id}/export", tags=["charges"])
def export(
    charge_id: int, session: SessionDep, actor: Operator, why: ReasonHeader = None
) -> ChargeRead:
    """Acknowledge a charge as exported to billing (logged charge_exported). Safe to repeat:
    an exported charge stays exported; a waived one is a 409 (owed by nobody)."""
    charge_service.export_charges(
        session, [charge_id], actor=actor.name, on=business_today(session), reason=why
    )
    return ChargeRead.model_validate(charge_repository.get_or_not_found(session, charge_id))


# --- documents ---------------------------------------------------------------------------


@router.get("/documents/{document_id}", tags=["documents"], dependencies=[Reader])
def document(document_id: int, session: SessionDep) -> DocumentRead:
    """One generated letter: its plan, invoices and the path of its PDF."""
    return DocumentRead.model_validate(document_repository.get_or_not_found(session, document_id))


@router.get(
    "/documents/{document_id}/pdf",
    tags=["documents"],
    dependencies=[Reader],
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "The letter's PDF."}},
)
def document_pdf(document_id: int, session: SessionDep, env: EnvDep) -> Response:
    """The letter's PDF, as an attachment. Only a file inside the data folder is sent."""
    name, content = read_document_pdf(session, document_id, env.data_dir)
    return pdf_response(content, name)


# --- runs and explain --------------------------------------------------------------------


@router.post("/runs", tags=["runs"], status_code=202)
def start(
    session: SessionDep,
    actor: Operator,
    factory: FactoryDep,
    env: EnvDep,
    response: Response,
    body: RunCreate | None = None,
) -> RunDetailRead:
    """Start a run for `as_of` (default today). It goes on in the background: the answer (202)
    is the run as it starts; follow it at `GET /runs/{id}` (its `Location`) until its status
    is finished (or failed), with its progress and then its summary. A run in progress, or
    an as-of date before the latest finished run's, is a 409; after tomorrow without
    `future`, a 422."""
    body = body or RunCreate()
    as_of = body.as_of or business_today(session)
    end_request_writes(session)  # the run owns its transactions
    run_id = start_run(
        factory,
        as_of=as_of,
        env=env,
        execute=body.execute,
        actor=actor.name,
        allow_future=body.future,
    )
    response.headers["Location"] = f"/api/v1/runs/{run_id}"
    return run_detail(session, run_id)


@router.get("/runs/{run_id}", tags=["runs"], dependencies=[Reader])
def run(run_id: int, session: SessionDep) -> RunDetailRead:
    """One run: its status, progress (`phase`, `units_done` of `units_total`) and summary."""
    return run_detail(session, run_id)


@router.get("/invoices/{invoice_id}/explain", tags=["runs"], dependencies=[Reader])
def explain(
    invoice_id: str,
    session: SessionDep,
    as_of: Annotated[
        date | None, Query(description="Explain as of this date (default today).")
    ] = None,
) -> ExplanationRead:
    """Why an invoice is (or is not) dunned, and what the run would do on that date; changes
    nothing (`recoup explain`)."""
    day = as_of or business_today(session)
    result = explain_invoice(session, invoice_id, day)
    return ExplanationRead.model_validate(result.as_dict())


__all__ = ["EnvDep", "FactoryDep", "end_request_writes", "router"]
