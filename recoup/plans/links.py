"""Which invoices a plan covers.

An invoice-mode plan covers exactly its own invoice (`plans.invoice_id`), so no link row is
written for it: on a first run over a large book that is one row (and its indexes and
foreign keys) less per plan. A customer-mode plan covers the invoices linked to it in
`plan_invoices`, which grows as invoices join (R4). Every reader goes through `plan_links`.
"""

from __future__ import annotations

from sqlalchemy import Subquery, select, union_all

from recoup.models import Plan, PlanInvoice


def plan_links() -> Subquery:
    """(plan_id, invoice_id, joined_on) for every invoice every plan covers."""
    own = select(
        Plan.id.label("plan_id"),
        Plan.invoice_id.label("invoice_id"),
        Plan.opened_on.label("joined_on"),
    ).where(Plan.invoice_id.is_not(None))
    joined = select(PlanInvoice.plan_id, PlanInvoice.invoice_id, PlanInvoice.joined_on)
    return union_all(own, joined).subquery("plan_links")
