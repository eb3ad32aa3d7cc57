"""The configuration: PATCH /settings, templates, actions, policies and their levels one at a
time, each template previewed on a real invoice, what refers to each item, and /config, the
whole policy file (SPEC §4) read and replaced.

Every write goes through recoup.policies.service: the stored configuration with the change is
checked by the validator that checks a policy file (its problems at their path in the body,
`levels[0].days`), applied, and logged (`config_changed`) with the key's name as the actor and
the Recoup-Reason header. Items are named as in the file: a template by code and language, an
action by code, a policy by name, a level by its code within its policy."""

from __future__ import annotations

import json
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from recoup.api.deps import Actor, PageDep, PageParams, ReasonHeader, SessionDep, requires
from recoup.api.roles import Right, allowed
from recoup.api.schemas import ListPage
from recoup.core.errors import InvalidInput, RecoupError
from recoup.core.sessions import Session
from recoup.documents.preview import preview_template
from recoup.domain.redact import redact_url
from recoup.policies import repository
from recoup.policies import service as config_service
from recoup.policies.schemas import (
    ActionCreate,
    ActionRead,
    ActionUpdate,
    ConfigChangeRead,
    LevelCreate,
    LevelRead,
    LevelUpdate,
    PolicyCreate,
    PolicyRead,
    PolicyUpdate,
    ReferencesRead,
    TemplateCreate,
    TemplatePreviewRead,
    TemplateRead,
    TemplateUpdate,
)
from recoup.policies.service import ACTION, LEVEL, POLICY, TEMPLATE
from recoup.policies.yaml_text import MAX_FILE_BYTES, dump_yaml, load_yaml
from recoup.settings.schemas import SettingsRead, SettingsUpdate
from recoup.settings.service import business_today, get_settings

router = APIRouter()

Reader = Annotated[Actor, Depends(requires(Right.read))]
Configurer = Annotated[Actor, Depends(requires(Right.configure))]

YAML = "application/yaml"
YAML_TYPES = frozenset({YAML, "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"})


class PayloadTooLarge(RecoupError):
    status_code = 413
    title = "Payload too large"


class UnsupportedMediaType(RecoupError):
    status_code = 415
    title = "Unsupported media type"


def _page(rows: list[Any], page: PageParams) -> tuple[list[Any], bool]:
    """One page of a configuration list, after the object whose `id` is `starting_after` (or
    before the one that is `ending_before`). Paged in memory: a configuration is at most a
    policy file's size, read whole by every run."""
    ids = [str(row.id) for row in rows]
    given = page.given
    if given is not None and given not in ids:
        raise InvalidInput(f"{{field}}: no object {given!r} in this list", field=page.field)
    if page.before:
        end = ids.index(str(given))
        start = max(0, end - page.limit)
        return rows[start:end], start > 0
    start = 0 if given is None else ids.index(given) + 1
    return rows[start : start + page.limit], start + page.limit < len(rows)


# --- settings ------------------------------------------------------------------------------


@router.patch("/settings", tags=["settings"])
def update_settings(
    body: SettingsUpdate, session: SessionDep, actor: Configurer, why: ReasonHeader = None
) -> SettingsRead:
    """Change the fields given. R11 refuses (409, naming the field) changing `mode` or removing
    an invoice type while plans are open; a malformed value is a 422."""
    config_service.update_settings(session, body, actor.name, reason=why)
    return SettingsRead.model_validate(get_settings(session))


# --- templates -----------------------------------------------------------------------------


@router.get("/templates", tags=["templates"])
def list_templates(session: SessionDep, page: PageDep, _: Reader) -> ListPage[TemplateRead]:
    """Templates in the policy file's order."""
    rows, more = _page(list(repository.list_templates(session)), page)
    return ListPage[TemplateRead](
        data=[TemplateRead.model_validate(r) for r in rows], has_more=more
    )


@router.post("/templates", tags=["templates"], status_code=201)
def create_template(
    body: TemplateCreate, session: SessionDep, actor: Configurer, why: ReasonHeader = None
) -> TemplateRead:
    """A new template (a new code, or a new language of a code)."""
    template = body.to_domain()
    config_service.create_item(session, TEMPLATE, template, actor=actor.name, reason=why)
    return _template(session, template.code, template.language)


@router.get("/templates/{code}/{language}", tags=["templates"])
def get_template(code: str, language: str, session: SessionDep, _: Reader) -> TemplateRead:
    return _template(session, code, language)


@router.put("/templates/{code}/{language}", tags=["templates"])
def replace_template(
    code: str,
    language: str,
    body: TemplateCreate,
    session: SessionDep,
    actor: Configurer,
    why: ReasonHeader = None,
) -> TemplateRead:
    """Replace the template (its code and language stay)."""
    config_service.replace_item(
        session, TEMPLATE, (code, language), lambda _: body.to_domain(), actor=actor.name,
        reason=why,
    )  # fmt: skip
    return _template(session, code, language)


@router.patch("/templates/{code}/{language}", tags=["templates"])
def update_template(
    code: str,
    language: str,
    body: TemplateUpdate,
    session: SessionDep,
    actor: Configurer,
    why: ReasonHeader = None,
) -> TemplateRead:
    """Change the fields given."""
    config_service.replace_item(
        session, TEMPLATE, (code, language), body.applied_to, actor=actor.name, reason=why
    )
    return _template(session, code, language)


@router.delete("/templates/{code}/{language}", tags=["templates"], status_code=204)
def delete_template(
    code: str, language: str, session: SessionDep, actor: Configurer, why: ReasonHeader = None
) -> None:
    """Remove a template; refused (409, listing them) while actions send its code and it is
    the code's last language, or its messages are in the history."""
    config_service.remove_item(session, TEMPLATE, (code, language), actor=actor.name, reason=why)


@router.get("/templates/{code}/{language}/references", tags=["templates"])
def template_references(code: str, language: str, session: SessionDep, _: Reader) -> ReferencesRead:
    """The actions that send the template's code, and the action instances that sent it."""
    return ReferencesRead.of(config_service.references(session, TEMPLATE, (code, language)))


class PreviewFormat(StrEnum):
    json = "json"
    pdf = "pdf"


@router.get(
    "/templates/{code}/{language}/preview",
    tags=["templates"],
    responses={200: {"content": {"application/pdf": {}}}},
)
def preview(
    code: str,
    language: str,
    session: SessionDep,
    _: Reader,
    invoice: Annotated[str, Query(description="Render for this invoice's customer and plan.")],
    as_of: Annotated[
        date | None, Query(description="The date to render for (default today).")
    ] = None,
    format: Annotated[
        PreviewFormat, Query(description="`pdf`: a letter's PDF itself.")
    ] = PreviewFormat.json,
) -> Any:
    """The template rendered for a real invoice in this language, as the customer would get
    it now (the invoice's plan gives the level, balance and charges). Writes nothing."""
    row = repository.template_or_not_found(session, code, language)
    rendered = preview_template(
        session,
        code,
        invoice_id=invoice,
        today=as_of or business_today(session),
        language=language,
        channel=row.channel,
    )
    if format is PreviewFormat.pdf:
        if rendered.pdf is None:
            raise InvalidInput(f"{{field}}: template {code} is no letter", field="format")
        return Response(rendered.pdf.content, media_type="application/pdf")
    return TemplatePreviewRead.of(rendered)


def _template(session: Session, code: str, language: str) -> TemplateRead:
    return TemplateRead.model_validate(repository.template_or_not_found(session, code, language))


# --- actions -------------------------------------------------------------------------------


@router.get("/actions", tags=["actions"])
def list_actions(session: SessionDep, page: PageDep, _: Reader) -> ListPage[ActionRead]:
    """Actions in the policy file's order."""
    rows, more = _page(list(repository.list_actions(session)), page)
    return ListPage[ActionRead](data=[ActionRead.model_validate(r) for r in rows], has_more=more)


@router.post("/actions", tags=["actions"], status_code=201)
def create_action(
    body: ActionCreate, session: SessionDep, actor: Configurer, why: ReasonHeader = None
) -> ActionRead:
    """A new action: the common fields and the type's own, flat (SPEC §3)."""
    action = body.to_domain()
    config_service.create_item(session, ACTION, action, actor=actor.name, reason=why)
    return _action(session, action.code)


@router.get("/actions/{code}", tags=["actions"])
def get_action(code: str, session: SessionDep, _: Reader) -> ActionRead:
    return _action(session, code)


@router.put("/actions/{code}", tags=["actions"])
def replace_action(
    code: str, body: ActionCreate, session: SessionDep, actor: Configurer, why: ReasonHeader = None
) -> ActionRead:
    """Replace the action (its code stays)."""
    config_service.replace_item(
        session, ACTION, (code,), lambda _: body.to_domain(), actor=actor.name, reason=why
    )
    return _action(session, code)


@router.patch("/actions/{code}", tags=["actions"])
def update_action(
    code: str, body: ActionUpdate, session: SessionDep, actor: Configurer, why: ReasonHeader = None
) -> ActionRead:
    """Change the fields given."""
    config_service.replace_item(
        session, ACTION, (code,), body.applied_to, actor=actor.name, reason=why
    )
    return _action(session, code)


@router.delete("/actions/{code}", tags=["actions"], status_code=204)
def delete_action(
    code: str, session: SessionDep, actor: Configurer, why: ReasonHeader = None
) -> None:
    """Remove an action; refused (409, listing them) while levels run it or it is in the
    history."""
    config_service.remove_item(session, ACTION, (code,), actor=actor.name, reason=why)


@router.get("/actions/{code}/references", tags=["actions"])
def action_references(code: str, session: SessionDep, _: Reader) -> ReferencesRead:
    """The levels that run the action, and its action instances."""
    return ReferencesRead.of(config_service.references(session, ACTION, (code,)))


def _action(session: Session, code: str) -> ActionRead:
    return ActionRead.model_validate(repository.action_by_code_or_not_found(session, code))


# --- policies ------------------------------------------------------------------------------


@router.get("/policies", tags=["policies"])
def list_policies(session: SessionDep, page: PageDep, _: Reader) -> ListPage[PolicyRead]:
    """Policies by priority, with their levels and rules."""
    rows, more = _page(list(repository.list_policies(session)), page)
    return ListPage[PolicyRead](data=[PolicyRead.model_validate(r) for r in rows], has_more=more)


@router.post("/policies", tags=["policies"], status_code=201)
def create_policy(
    body: PolicyCreate, session: SessionDep, actor: Configurer, why: ReasonHeader = None
) -> PolicyRead:
    """A new policy with its levels and rules."""
    policy = body.to_domain()
    config_service.create_item(session, POLICY, policy, actor=actor.name, reason=why)
    return _policy(session, policy.name)


@router.get("/policies/{name}", tags=["policies"])
def get_policy(name: str, session: SessionDep, _: Reader) -> PolicyRead:
    return _policy(session, name)


@router.put("/policies/{name}", tags=["policies"])
def replace_policy(
    name: str, body: PolicyCreate, session: SessionDep, actor: Configurer, why: ReasonHeader = None
) -> PolicyRead:
    """Replace the policy, levels and rules included (its name stays)."""
    config_service.replace_item(
        session, POLICY, (name,), lambda _: body.to_domain(), actor=actor.name, reason=why
    )
    return _policy(session, name)


@router.patch("/policies/{name}", tags=["policies"])
def update_policy(
    name: str, body: PolicyUpdate, session: SessionDep, actor: Configurer, why: ReasonHeader = None
) -> PolicyRead:
    """Change the fields given (levels: through /policies/{name}/levels)."""
    config_service.replace_item(
        session, POLICY, (name,), body.applied_to, actor=actor.name, reason=why
    )
    return _policy(session, name)


@router.delete("/policies/{name}", tags=["policies"], status_code=204)
def delete_policy(
    name: str, session: SessionDep, actor: Configurer, why: ReasonHeader = None
) -> None:
    """Remove a policy and its levels; refused (409, listing them) while plans followed it or
    customers name it (set `active: false` instead)."""
    config_service.remove_item(session, POLICY, (name,), actor=actor.name, reason=why)


@router.get("/policies/{name}/references", tags=["policies"])
def policy_references(name: str, session: SessionDep, _: Reader) -> ReferencesRead:
    """The plans that follow the policy, their action instances, the customers naming it."""
    return ReferencesRead.of(config_service.references(session, POLICY, (name,)))


def _policy(session: Session, name: str) -> PolicyRead:
    return PolicyRead.model_validate(repository.policy_by_name_or_not_found(session, name))


# --- levels, within their policy -----------------------------------------------------------


@router.get("/policies/{name}/levels", tags=["policies"])
def list_levels(name: str, session: SessionDep, page: PageDep, _: Reader) -> ListPage[LevelRead]:
    """The policy's levels in its order."""
    rows, more = _page(list(repository.policy_by_name_or_not_found(session, name).levels), page)
    return ListPage[LevelRead](data=[LevelRead.model_validate(r) for r in rows], has_more=more)


@router.post("/policies/{name}/levels", tags=["policies"], status_code=201)
def create_level(
    name: str, body: LevelCreate, session: SessionDep, actor: Configurer, why: ReasonHeader = None
) -> LevelRead:
    """A new level, after the policy's others."""
    level = body.to_domain()
    config_service.create_item(session, LEVEL, level, policy=name, actor=actor.name, reason=why)
    return _level(session, name, level.code)


@router.get("/policies/{name}/levels/{code}", tags=["policies"])
def get_level(name: str, code: str, session: SessionDep, _: Reader) -> LevelRead:
    return _level(session, name, code)


@router.put("/policies/{name}/levels/{code}", tags=["policies"])
def replace_level(
    name: str,
    code: str,
    body: LevelCreate,
    session: SessionDep,
    actor: Configurer,
    why: ReasonHeader = None,
) -> LevelRead:
    """Replace the level, in its place (its code stays)."""
    config_service.replace_item(
        session, LEVEL, (code,), lambda _: body.to_domain(), policy=name, actor=actor.name,
        reason=why,
    )  # fmt: skip
    return _level(session, name, code)


@router.patch("/policies/{name}/levels/{code}", tags=["policies"])
def update_level(
    name: str,
    code: str,
    body: LevelUpdate,
    session: SessionDep,
    actor: Configurer,
    why: ReasonHeader = None,
) -> LevelRead:
    """Change the fields given."""
    config_service.replace_item(
        session, LEVEL, (code,), body.applied_to, policy=name, actor=actor.name, reason=why
    )
    return _level(session, name, code)


@router.delete("/policies/{name}/levels/{code}", tags=["policies"], status_code=204)
def delete_level(
    name: str, code: str, session: SessionDep, actor: Configurer, why: ReasonHeader = None
) -> None:
    """Remove a level; refused (409, listing them) while plans stand at it or its actions are
    in the history."""
    config_service.remove_item(session, LEVEL, (code,), policy=name, actor=actor.name, reason=why)


@router.get("/policies/{name}/levels/{code}/references", tags=["policies"])
def level_references(name: str, code: str, session: SessionDep, _: Reader) -> ReferencesRead:
    """The plans standing at the level and its action instances."""
    return ReferencesRead.of(config_service.references(session, LEVEL, (code,), policy=name))


def _level(session: Session, name: str, code: str) -> LevelRead:
    return LevelRead.model_validate(repository.level_or_not_found(session, name, code))


# --- the whole policy file -----------------------------------------------------------------


def _wants_json(accept: str | None) -> bool:
    """JSON when the Accept header names application/json before any YAML type; YAML (the
    policy file as `recoup config export` writes it) otherwise."""
    for part in (accept or "").split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media == "application/json" or media.endswith("+json"):
            return True
        if media in YAML_TYPES:
            return False
    return False


@router.get(
    "/config",
    tags=["config"],
    response_model=None,
    responses={
        200: {
            "description": "The policy file.",
            "content": {
                # the same mapping either way (a YAML reader gives the JSON's object)
                YAML: {"schema": {"type": "object"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
def get_config(
    session: SessionDep, actor: Reader, accept: Annotated[str | None, Header()] = None
) -> Response:
    """The whole configuration as a policy file (SPEC §4): YAML by default, JSON with
    `Accept: application/json`. PUT takes it back unchanged. Webhook URLs are masked for keys
    that may not configure (they may hold a token)."""
    document = config_service.export_config(session)
    if not allowed(actor.role, Right.configure):
        for webhook in document.get("webhooks", []):
            webhook["url"] = redact_url(webhook["url"])
    if _wants_json(accept):
        return JSONResponse(document)
    return Response(dump_yaml(document), media_type=YAML)


async def _policy_file(request: Request, _: Configurer) -> object:
    """The request's body as a loaded policy file: JSON by its Content-Type, else YAML; read
    up to the policy file's limit (413 beyond it, before it is read whole), once the key may
    configure."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FILE_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FILE_BYTES:
            raise _too_large()
        chunks.append(chunk)
    raw = b"".join(chunks)
    media = request.headers.get("content-type", YAML).split(";", 1)[0].strip().lower()
    is_json = media == "application/json" or media.endswith("+json")
    if not is_json and media not in YAML_TYPES:
        raise UnsupportedMediaType(
            f"a policy file is {YAML} or application/json, not {media}", field="content-type"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("{field}: not UTF-8 text", field="body") from None
    if not text.strip():
        # an empty file would mean "no configuration": everything removed
        raise InvalidInput("{field}: empty; send the whole policy file", field="body")
    if is_json:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"{{field}}: not JSON: {exc}", field="body") from None
    try:
        return load_yaml(text, "body")
    except RecoupError as exc:
        raise InvalidInput(exc.message, field="body") from None


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"a policy file may have at most {MAX_FILE_BYTES:,} bytes")


@router.put(
    "/config",
    tags=["config"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                # the same mapping either way (a YAML reader gives the JSON's object)
                YAML: {"schema": {"type": "object"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
def put_config(
    document: Annotated[object, Depends(_policy_file)],
    session: SessionDep,
    actor: Configurer,
    why: ReasonHeader = None,
    dry_run: Annotated[
        bool, Query(description="Check and answer what would change; write nothing.")
    ] = False,
) -> ConfigChangeRead:
    """Replace the whole configuration with the policy file in the body, atomically (as
    `recoup config apply`): what it created, changed and removed. Nothing is written if the
    file has any problem (422, every one at its path) or a rule refuses it (R11, R14: 409)."""
    report = config_service.apply_document(session, document, actor.name, reason=why)
    answer = ConfigChangeRead.of(report, dry_run=dry_run)
    if dry_run:
        session.rollback()
    return answer
