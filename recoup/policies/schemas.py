"""Templates, actions, policies and their levels as the API shows and takes them (SPEC §1, §4).

Field names are the policy file's. Write schemas read their body with the policy file's reader
(`recoup.policies.document.read_item`): a value is refused with the file's words, at its path
within the body (`levels[2].days`). Whether the whole configuration is sound with the change
(references, one end level, R11, R14) is the validator's, when the service applies it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ConfigDict, Field, model_validator

from recoup.core.reader import DocumentReader, issues_error
from recoup.core.schemas import Schema
from recoup.domain.enums import ActionMode, ActionType, Channel, Transition
from recoup.policies.document import (
    ACTION_COMMON_KEYS,
    LEVEL_KEYS,
    POLICY_KEYS,
    TEMPLATE_KEYS,
    Item,
    action_to_dict,
    level_to_dict,
    policy_to_dict,
    read_item,
    template_to_dict,
)

if TYPE_CHECKING:
    from recoup.policies.service import ChangeReport, References

_TO_DICT: dict[str, Callable[[Any], dict[str, Any]]] = {
    "template": template_to_dict,
    "action": action_to_dict,
    "level": level_to_dict,
    "policy": policy_to_dict,
}
_WHAT = {"template": "the template", "action": "the action", "level": "the level"}


def _read(kind: str, data: object) -> Item:
    """`data` read as one `kind` of the policy file; its problems raise InvalidInput."""
    item, issues = read_item(kind, data, kind)
    if issues:
        raise issues_error(_WHAT.get(kind, "the policy"), issues, kind)
    return item


# --- read ----------------------------------------------------------------------------------


class TemplateRead(Schema):
    id: int
    code: str
    channel: Channel
    language: str
    subject: str | None = None
    body: str
    active: bool


class ActionRead(Schema):
    """The common fields and, flat beside them as in the file, the type's own (`template`,
    `amounts`, `rate`…)."""

    model_config = ConfigDict(extra="allow")

    id: int
    code: str
    type: ActionType
    mode: ActionMode
    role: str | None = None
    instructions: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return data
        params = dict(getattr(data, "params", None) or {})
        common = {key: getattr(data, key) for key in ("id", *ACTION_COMMON_KEYS)}
        return {**params, **common}


class LevelRead(Schema):
    id: int
    code: str
    days: int
    reminder: bool
    end: bool
    min_balance: dict[str, Decimal] = Field(default_factory=dict)
    deadline_days: int | None = None
    actions: list[str]


class PolicyRead(Schema):
    id: int
    name: str
    description: str
    active: bool
    default: bool = Field(validation_alias="is_default")
    priority: int
    min_balance: dict[str, Decimal] = Field(default_factory=dict)
    currency: str | None = None
    attach_invoice: bool
    transition: Transition
    levels: list[LevelRead]
    rules: dict[str, Any] | None = None


# --- create: the whole item, read as the file reads it ----------------------------------------


class _ReadLikeTheFile(Schema):
    kind: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _read_like_the_file(cls, data: Any) -> Any:
        """The policy file's reader judges every value; what it keeps is what is taken."""
        return _TO_DICT[cls.kind](_read(cls.kind, data))

    def to_domain(self) -> Any:
        return _read(self.kind, self.model_dump(mode="json", exclude_none=True))


class TemplateCreate(_ReadLikeTheFile):
    kind: ClassVar[str] = "template"

    code: str
    channel: Channel
    language: str
    subject: str | None = None
    body: str
    active: bool = True


class ActionCreate(_ReadLikeTheFile):
    """The common fields and the type's own, flat (`{code, type: late_fee_fixed, amounts}`)."""

    kind: ClassVar[str] = "action"
    model_config = ConfigDict(extra="allow")

    code: str
    type: ActionType
    mode: ActionMode = ActionMode.automatic
    role: str | None = None
    instructions: str | None = None


class LevelCreate(_ReadLikeTheFile):
    kind: ClassVar[str] = "level"

    code: str
    days: int
    reminder: bool = False
    end: bool = False
    min_balance: dict[str, Decimal] = Field(default_factory=dict)
    deadline_days: int | None = None
    actions: list[str] = Field(default_factory=list)


class PolicyCreate(_ReadLikeTheFile):
    kind: ClassVar[str] = "policy"

    name: str
    description: str = ""
    active: bool = True
    default: bool = False
    priority: int
    min_balance: dict[str, Decimal] = Field(default_factory=dict)
    currency: str | None = None
    attach_invoice: bool = False
    transition: Transition = Transition.days_overdue
    levels: list[LevelCreate] = Field(default_factory=list)
    rules: dict[str, Any] | None = None


# --- update: the fields given, over the current item, read as the file reads it ------------


class _UpdateLikeTheFile(Schema):
    """Any of the item's fields; `applied_to(current)` reads the result as the file would."""

    kind: ClassVar[str]
    keys: ClassVar[tuple[str, ...]]
    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        reader = DocumentReader()
        obj = reader.mapping(data, cls.kind)
        if obj is not None and cls.keys:
            reader.unknown_keys(obj, cls.keys, cls.kind)
        if reader.issues:
            raise issues_error(_WHAT.get(cls.kind, "the policy"), reader.issues, cls.kind)
        return data

    def applied_to(self, current: Any) -> Any:
        given = self.model_dump(exclude_unset=True)
        return _read(self.kind, {**_TO_DICT[self.kind](current), **given})


class TemplateUpdate(_UpdateLikeTheFile):
    kind: ClassVar[str] = "template"
    keys: ClassVar[tuple[str, ...]] = TEMPLATE_KEYS


class ActionUpdate(_UpdateLikeTheFile):
    """The type's own fields depend on the type: the reader judges them over the current."""

    kind: ClassVar[str] = "action"
    keys: ClassVar[tuple[str, ...]] = ()


class LevelUpdate(_UpdateLikeTheFile):
    kind: ClassVar[str] = "level"
    keys: ClassVar[tuple[str, ...]] = LEVEL_KEYS


class PolicyUpdate(_UpdateLikeTheFile):
    """Without `levels`; a level is changed on its own (`LevelUpdate`)."""

    kind: ClassVar[str] = "policy"
    keys: ClassVar[tuple[str, ...]] = tuple(key for key in POLICY_KEYS if key != "levels")


# --- what a change did, and what refers to an item --------------------------------------


class ConfigIssueRead(Schema):
    field: str
    message: str


class ConfigChangeRead(Schema):
    """What applying a configuration created, changed and removed (`config apply`'s words:
    `policy Standard`, `level Standard/final`, `template reminder/en`), and its warnings
    (sound, but probably not meant). `dry_run`: checked and reported, nothing written."""

    dry_run: bool = False
    created: list[str]
    changed: list[str]
    removed: list[str]
    warnings: list[ConfigIssueRead] = Field(default_factory=list)

    @classmethod
    def of(cls, report: ChangeReport, *, dry_run: bool = False) -> ConfigChangeRead:
        return cls(
            dry_run=dry_run,
            **report.as_dict(),
            warnings=[ConfigIssueRead(field=w.path, message=w.message) for w in report.warnings],
        )


class ReferencesRead(Schema):
    """What refers to a template, action, level or policy (R14). `in_use`: deleting it is
    refused (409) until these are gone; history (plans, action instances) stays for good."""

    kind: str
    id: str  # as in the item's path: `reminder/en`, `fee_15`, `Standard/final`, `Standard`
    in_use: bool
    configuration: list[str]  # items of the configuration naming it: `action email_notice`
    plans: int
    plan_ids: list[int]  # the first few
    action_instances: int
    customers: int  # customers naming the policy explicitly

    @classmethod
    def of(cls, references: References) -> ReferencesRead:
        usage = references.usage
        return cls(
            kind=references.kind,
            id=references.name,
            in_use=references.in_use,
            configuration=list(references.configuration),
            plans=usage.plans,
            plan_ids=list(usage.plan_ids),
            action_instances=usage.action_instances,
            customers=usage.customers,
        )


class TemplatePreviewRead(Schema):
    """A template rendered for a real invoice, as its customer would get it
    (`recoup template preview`): `text` the plain text, `html` an email's or letter's HTML,
    `pages` a letter's PDF pages."""

    code: str
    channel: Channel
    language: str
    subject: str | None = None
    text: str
    html: str | None = None
    pages: int | None = None

    @classmethod
    def of(cls, preview: Any) -> TemplatePreviewRead:
        return cls(
            code=preview.code,
            channel=preview.channel,
            language=preview.language,
            subject=preview.subject,
            text=preview.text,
            html=preview.html,
            pages=preview.pdf.pages if preview.pdf is not None else None,
        )
