"""What the API answers that no single feature's schema is: compositions of the features'
read schemas (the account view), and the write bodies routes take beside theirs."""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from recoup.book.customers import CustomerDetail
from recoup.book.schemas import CustomerDetailRead
from recoup.charges.schemas import ChargeRead
from recoup.core.schemas import Schema
from recoup.log.schemas import LogEntryRead
from recoup.plans.schemas import PlanRead

T = TypeVar("T")


class ListPage(Schema, Generic[T]):
    """A list (SPEC §6): one page of `data`; `has_more`: a page after it (ask with
    `starting_after=<id of the last object>`), or, for a page read `ending_before`, a page
    before it (`ending_before=<id of the first object>`). No total count."""

    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool

    @classmethod
    def of(cls, data: list[T], next_cursor: str | None) -> ListPage[T]:
        return cls(data=data, has_more=next_cursor is not None)


class CustomerAccount(CustomerDetailRead):
    """One account, as `recoup customer show --json` shows it: the customer, its status, open
    invoices, and its plans, charges and latest log."""

    plans: list[PlanRead]
    charges: list[ChargeRead]
    log: list[LogEntryRead]

    @classmethod
    def of_detail(cls, detail: CustomerDetail) -> CustomerAccount:
        return cls.model_validate(
            {
                **CustomerDetailRead.of(detail).model_dump(),
                "plans": detail.plans,
                "charges": detail.charges,
                "log": detail.log,
            }
        )


class ProblemError(Schema):
    """One invalid field: its JSON name (`policies[0].days`), why, and the row of a batch."""

    field: str | None
    message: str
    index: int | None


class Problem(Schema):
    """An error (RFC 9457, SPEC §6), as `application/problem+json`."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[ProblemError]


class PlanResume(Schema):
    """Resume a paused plan by hand."""

    reason: str = "by hand"  # resume_plan's default: what the CLI logs


__all__ = ["CustomerAccount", "ListPage", "PlanResume", "Problem", "ProblemError"]
