"""The dashboard (`/`): per currency what is owed by aging bucket, plans by status and level,
the recovery rate and what was received per week, DSO; today's run, the tasks waiting for my
roles and the failed actions. The figures are recoup.reports' (`recoup report` prints the
same), the run is recoup.runs.history's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from recoup.actions import repository as action_repository
from recoup.domain.aging import AGING_BUCKETS
from recoup.domain.enums import InstanceStatus, PlanStatus
from recoup.domain.money import money_text
from recoup.reports.service import DSO_DAYS, CurrencyTrends, book_report, trends
from recoup.runs.history import list_runs
from recoup.web.page import ReadPage

router = APIRouter()

FAILED_SHOWN = 5


@router.get("/")
def dashboard(page: ReadPage) -> Response:
    today = page.today
    report = book_report(page.session, today)
    by_currency = trends(page.session, today)
    runs = list_runs(page.session, limit=1).items
    last_run = runs[0] if runs else None
    failed, _next = action_repository.list_instances(
        page.session, status=InstanceStatus.failed.value, limit=FAILED_SHOWN
    )
    currencies = []
    for figures in report.currencies:
        trend = by_currency.get(figures.currency) or CurrencyTrends(figures.currency, [])
        currencies.append(
            {
                "figures": figures,
                "trend": trend,
                "dso": trend.dso(figures.outstanding),
                "charts": _charts(figures, trend),
            }
        )
    return page.render(
        "dashboard.html",
        today=today,
        currencies=currencies,
        buckets=AGING_BUCKETS,
        plan_statuses=[s.value for s in PlanStatus],
        last_run=last_run,
        failed=failed,
        failed_count=action_repository.count_with_status(page.session, InstanceStatus.failed.value),
        dso_days=DSO_DAYS,
    )


def _charts(figures: Any, trend: CurrencyTrends) -> dict[str, Any]:
    """The charts' data (read by static/app.js): amounts as decimal strings, exact."""
    currency = figures.currency
    return {
        "aging": {
            "type": "bar",
            "currency": currency,
            "labels": [bucket.label for bucket in AGING_BUCKETS],
            "series": [
                {
                    "label": f"Owed ({currency})",
                    "data": [
                        money_text(figures.aging[b.key].amount, currency) for b in AGING_BUCKETS
                    ],
                }
            ],
        },
        "weeks": {
            "type": "weeks",
            "currency": currency,
            "labels": [week.start.isoformat() for week in trend.weeks],
            "series": [
                {
                    "label": f"Received ({currency})",
                    "data": [money_text(week.collected, currency) for week in trend.weeks],
                },
                {
                    "label": "Recovery rate (%)",
                    "data": [
                        None if week.recovery_rate is None else round(week.recovery_rate * 100, 1)
                        for week in trend.weeks
                    ],
                },
            ],
        },
    }
