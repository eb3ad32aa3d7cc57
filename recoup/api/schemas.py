"""What the API answers that no single feature's schema is: compositions of the features'
read schemas (the account view), and the write bodies routes take beside theirs."""

from __future__ import annotations

from recoup.book.customers import CustomerDetail
from recoup.book.schemas import CustomerDetailRead
from recoup.charges.schemas import ChargeRead
from recoup.core.schemas import Schema
from recoup.log.schemas import LogEntryRead
from recoup.plans.schemas import PlanRead


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


class PlanResume(Schema):
    """Resume a paused plan by hand."""

    reason: str = "by hand"  # resume_plan's default: what the CLI logs


__all__ = ["CustomerAccount", "PlanResume"]
