"""Charges as every face shows them (SPEC §5: `id, customer_id, invoice_id, amount, currency,
service, status`), and what waiving one takes."""

from __future__ import annotations

from decimal import Decimal

from pydantic import model_validator

from recoup.core.schemas import Schema
from recoup.domain.enums import ChargeStatus
from recoup.domain.money import round_money


class ChargeRead(Schema):
    id: int
    customer_id: str
    invoice_id: str | None
    amount: Decimal
    currency: str
    service: str
    status: ChargeStatus

    @model_validator(mode="after")
    def _rounded(self) -> ChargeRead:
        self.amount = round_money(self.amount, self.currency)
        return self


class ChargeWaive(Schema):
    """Waive a charge: why it is no longer owed."""

    reason: str


__all__ = ["ChargeRead", "ChargeWaive"]
