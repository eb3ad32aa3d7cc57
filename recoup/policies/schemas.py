"""Templates, actions, policies and their levels as the API shows and takes them (SPEC §1, §4).

Field names are the policy file's. Write schemas read their body with the policy file's reader
(`recoup.policies.document.read_item`): a value is refused with the file's words, at its path
within the body (`levels[2].days`). Whether the whole configuration is sound with the change
(references, one end level, R11, R14) is the validator's, when the service applies it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, ClassVar

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
