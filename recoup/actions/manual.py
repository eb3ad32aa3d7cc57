"""Manual actions on a plan: send an email, generate a letter, change the account status by
hand (the Openbravo seed: "only available ... if the status has the required information set").

A person may act on an `active` or `paused` plan when its current level has what the action
needs: a `send_email` action with a template, a `send_letter` action, a
`change_account_status` action. The level's action gives the defaults (its template, its
status); the person may choose another active template of the same channel, or another status.

`request_manual_action` is a service (it flushes): it records an action instance keyed
`manual:<plan>:<n>:<type>`, leased to the caller, with who asked and what they chose.
`perform_manual_action` is an edge, like `execute_pending`: it commits that request, then runs
the instance through the runner's own path (guard, executor, outcome, log, retry/failure),
so every log entry carries the person as its actor. A request whose process dies before the
effect is made is taken over by a worker at once (its liveness lock is free, see
recoup.core.locks.holding); a transient failure is retried
by the worker (on a paused plan, once it resumes).
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from recoup.actions.claims import lease_duration
from recoup.actions.context import MANUAL_REQUEST
from recoup.actions.runner import process_instance
from recoup.core.clock import utc_now
from recoup.core.env import EnvConfig
from recoup.core.errors import Conflict, InvalidInput
from recoup.core.locks import holding
from recoup.domain.enums import (
    CANCELLED_ACCOUNT_STATUS,
    SYSTEM_ACTOR,
    ActionType,
    Channel,
    Event,
    InstanceStatus,
)
from recoup.log.service import log
from recoup.models import ActionInstance, ActionRow, LevelRow, Plan, TemplateRow
from recoup.plans.service import get_plan
from recoup.settings.service import business_today


class ManualKind(StrEnum):
    email = "email"
    letter = "letter"
    status = "status"


@dataclass(frozen=True)
class _Need:
    action_type: ActionType
    what: str  # for messages: "an email action with a template"
    channel: Channel | None  # templates of this channel; None: a status, not a template


NEEDS: dict[ManualKind, _Need] = {
    ManualKind.email: _Need(
        ActionType.send_email, "a send_email action with a template", Channel.email
    ),
    ManualKind.letter: _Need(ActionType.send_letter, "a send_letter action", Channel.letter),
    ManualKind.status: _Need(
        ActionType.change_account_status, "a change_account_status action", None
    ),
}


class ManualActionUnavailable(Conflict):
    """The plan's state or its current level does not allow this manual action."""


@dataclass(frozen=True)
class ManualOutcome:
    instance_id: int
    plan_id: int
    kind: ManualKind
    action: str
    level: str
    status: str  # the instance's: done, skipped, pending (a retry is scheduled), failed…
    result: dict[str, Any]
    error: str | None
    next_attempt_at: str | None

    @property
    def succeeded(self) -> bool:
        return self.status == InstanceStatus.done


# --- what the current level allows --------------------------------------------------------


def current_level(session: Session, plan: Plan) -> LevelRow:
    if not plan.is_open:
        raise ManualActionUnavailable(
            f"plan {plan.id} is {plan.status}: manual actions are only for active or paused plans"
        )
    if plan.level is None:
        raise ManualActionUnavailable(
            f"plan {plan.id} has not reached a level yet: manual actions use the current "
            "level's actions"
        )
    level = next((lvl for lvl in plan.policy.levels if lvl.code == plan.level), None)
    if level is None:
        raise ManualActionUnavailable(
            f"plan {plan.id} is at level {plan.level}, which policy {plan.policy.name} "
            "no longer has"
        )
    return level


def level_action(session: Session, plan: Plan, kind: ManualKind) -> tuple[LevelRow, ActionRow]:
    """The current level and its first action of the type `kind` needs, or a clear error."""
    need = NEEDS[kind]
    level = current_level(session, plan)
    codes = list(level.actions or [])
    rows = {
        row.code: row
        for row in session.scalars(select(ActionRow).where(ActionRow.code.in_(codes))).all()
    }
    for code in codes:
        row = rows.get(code)
        if row is not None and row.type == need.action_type:
            return level, row
    present = ", ".join(f"{c} ({rows[c].type})" for c in codes if c in rows) or "no actions"
    raise ManualActionUnavailable(
        f"plan {plan.id}: level {level.code} has no {need.action_type} action "
        f"({present}); a manual {kind} needs {need.what} on the plan's current level"
    )


@dataclass(frozen=True)
class ManualOption:
    """One manual action and whether the plan's current level allows it now: the action it
    would use, or why not."""

    kind: ManualKind
    action: str | None
    available: bool
    reason: str | None


def manual_options(session: Session, plan: Plan) -> list[ManualOption]:
    """Each kind of manual action (email, letter, status), available now or not and why."""
    out: list[ManualOption] = []
    for kind in ManualKind:
        code: str | None = None
        try:
            _, action = level_action(session, plan, kind)
            code = action.code
            _params_for(session, plan, kind, action, template=None, status=None)
        except (ManualActionUnavailable, InvalidInput) as exc:
            out.append(ManualOption(kind, code, False, exc.render()))
            continue
        out.append(ManualOption(kind, code, True, None))
    return out


def available_manual_actions(session: Session, plan: Plan) -> dict[str, str]:
    """kind → the action of the current level it would use, for what is available now."""
    out: dict[str, str] = {}
    for kind in ManualKind:
        try:
            _, action = level_action(session, plan, kind)
            _params_for(session, plan, kind, action, template=None, status=None)
        except (ManualActionUnavailable, InvalidInput):
            continue
        out[kind.value] = action.code
    return out


def _has_template(session: Session, code: str, channel: Channel) -> bool:
    return (
        session.scalar(
            select(TemplateRow.id)
            .where(
                TemplateRow.code == code,
                TemplateRow.channel == channel.value,
                TemplateRow.active.is_(True),
            )
            .limit(1)
        )
        is not None
    )


def _params_for(
    session: Session,
    plan: Plan,
    kind: ManualKind,
    action: ActionRow,
    *,
    template: str | None,
    status: str | None,
) -> dict[str, Any]:
    """The parameters the person chose, checked; the action's own fill in the rest."""
    need = NEEDS[kind]
    params = dict(action.params or {})
    if need.channel is not None:
        if template is not None:
            template = template.strip()
            if not template:
                raise InvalidInput("{field} must not be empty", field="template")
            if not _has_template(session, template, need.channel):
                raise InvalidInput(
                    f"{{field}} {template}: no active {need.channel} template with this code",
                    field="template",
                )
            return {"template": template}
        default = params.get("template")
        if not default:
            raise ManualActionUnavailable(
                f"plan {plan.id}: action {action.code} of level {plan.level} has no template; "
                f"pass {{field}} CODE (an active {need.channel} template)",
                field="template",
            )
        if not _has_template(session, str(default), need.channel):
            raise ManualActionUnavailable(
                f"plan {plan.id}: template {default} of action {action.code} is not an active "
                f"{need.channel} template; pass {{field}} CODE",
                field="template",
            )
        return {}
    if status is not None:
        status = status.strip()
        if not status:
            raise InvalidInput("{field} must not be empty", field="status")
        if status == CANCELLED_ACCOUNT_STATUS:
            raise InvalidInput(
                f"{{field}} {status}: a cancelled account is final, dunning never sets it",
                field="status",
            )
        return {"status": status}
    if not params.get("status"):
        raise ManualActionUnavailable(
            f"plan {plan.id}: action {action.code} of level {plan.level} has no status; "
            "pass {field} STATUS",
            field="status",
        )
    return {}


# --- the service ---------------------------------------------------------------------------


def request_manual_action(
    session: Session,
    plan: Plan,
    kind: ManualKind | str,
    *,
    actor: str,
    on: date,
    token: str,
    template: str | None = None,
    status: str | None = None,
    reason: str | None = None,
) -> ActionInstance:
    """Record a person's request as an action instance leased to `token` (flushes); `reason`:
    why, for the log."""
    kind = ManualKind(kind)
    if not actor or actor == SYSTEM_ACTOR:
        raise InvalidInput(
            f"a manual {kind} is done by a person: pass {{field}} NAME or set RECOUP_USER",
            field="user",
        )
    if kind is not ManualKind.status and status is not None:
        raise InvalidInput(f"{{field}} is for a status change, not a manual {kind}", field="status")
    if kind is ManualKind.status and template is not None:
        raise InvalidInput(
            "{field} is for an email or a letter, not a status change", field="template"
        )
    _, action = level_action(session, plan, kind)
    chosen = _params_for(session, plan, kind, action, template=template, status=status)
    number = (
        session.scalar(
            select(func.count())
            .select_from(ActionInstance)
            .where(ActionInstance.key.like(f"manual:{plan.id}:%"))
        )
        or 0
    ) + 1
    now = utc_now()
    instance = ActionInstance(
        key=f"manual:{plan.id}:{number}:{action.type}",
        plan_id=plan.id,
        invoice_id=plan.invoice_id,
        customer_id=plan.customer_id,
        policy_id=plan.policy_id,
        level=plan.level,
        action=action.code,
        type=action.type,
        status=InstanceStatus.running.value,
        attempts=1,  # claimed by the caller: the attempt counts (recoup.actions.claims)
        # due at once: if this process dies before running it, a worker takes it over once
        # the lease expires
        next_attempt_at=now,
        leased_by=token,
        lease_until=now + max(lease_duration(), timedelta(seconds=30)),
        due_on=on,
        created_at=now,
        result={MANUAL_REQUEST: {"actor": actor, "kind": kind.value, "params": chosen}},
    )
    session.add(instance)
    session.flush()
    log(
        session,
        Event.action_queued,
        on=on,
        actor=actor,
        customer_id=plan.customer_id,
        invoice_id=plan.invoice_id,
        plan_id=plan.id,
        level=plan.level,
        action=action.code,
        type=action.type,
        manual=kind.value,
        instance_id=instance.id,
        reason=reason,
        **chosen,
    )
    session.flush()
    return instance


# --- the edge ------------------------------------------------------------------------------


def perform_manual_action(
    factory: sessionmaker[Session],
    plan_id: int,
    kind: ManualKind | str,
    *,
    actor: str,
    env: EnvConfig,
    template: str | None = None,
    status: str | None = None,
    today: date | None = None,
    reason: str | None = None,
) -> ManualOutcome:
    """Request the action and execute it now, through the runner. Owns its transactions."""
    kind = ManualKind(kind)
    token = f"manual-{socket.gethostname()}-{os.getpid()}#{uuid.uuid4().hex[:12]}"
    with holding(factory.kw["bind"], token):  # if this process dies, a worker takes over at once
        return _perform(
            factory, plan_id, kind, token, actor, env, today, template, status, reason
        )


def _perform(
    factory: sessionmaker[Session],
    plan_id: int,
    kind: ManualKind,
    token: str,
    actor: str,
    env: EnvConfig,
    today: date | None,
    template: str | None,
    status: str | None,
    reason: str | None = None,
) -> ManualOutcome:
    for attempt in range(3):  # two people acting on the same plan at once: take the next n
        try:
            with factory.begin() as session:
                plan = get_plan(session, plan_id)
                day = today or business_today(session)
                instance = request_manual_action(
                    session,
                    plan,
                    kind,
                    actor=actor,
                    on=day,
                    token=token,
                    template=template,
                    status=status,
                    reason=reason,
                )
                instance_id = instance.id
            break
        except IntegrityError:
            if attempt == 2:
                raise Conflict(
                    f"plan {plan_id}: another manual action was recorded at the same time; "
                    "try again"
                ) from None
    process_instance(factory, instance_id, token=token, env=env, today=day)
    with factory() as session:
        row = session.get(ActionInstance, instance_id)
        assert row is not None
        result = {k: v for k, v in (row.result or {}).items() if k != MANUAL_REQUEST}
        return ManualOutcome(
            instance_id=row.id,
            plan_id=plan_id,
            kind=kind,
            action=row.action,
            level=row.level,
            status=row.status,
            result=result,
            error=row.error,
            next_attempt_at=(
                row.next_attempt_at.isoformat()
                if row.status == InstanceStatus.pending and row.next_attempt_at
                else None
            ),
        )


__all__ = [
    "NEEDS",
    "ManualActionUnavailable",
    "ManualKind",
    "ManualOption",
    "ManualOutcome",
    "available_manual_actions",
    "current_level",
    "level_action",
    "manual_options",
    "perform_manual_action",
    "request_manual_action",
]
