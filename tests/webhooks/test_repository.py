"""The webhooks' named queries: what the pump reads, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from recoup.core.clock import utc_now
from recoup.domain.enums import DeliveryStatus, Event
from recoup.log.service import log
from recoup.models import WebhookDelivery, WebhookEndpoint
from recoup.webhooks import repository


def test_the_pump_reads_endpoints_entries_and_due_deliveries(
    session_factory: sessionmaker[Session],
) -> None:
    now = utc_now()
    with session_factory.begin() as session:
        assert repository.max_log_id(session) == 0
        assert not repository.has_active_endpoint(session)
        assert not repository.has_pending_delivery(session)
        session.add_all(
            [
                WebhookEndpoint(url="https://b.example/hook", events=["plan_opened"], position=1),
                WebhookEndpoint(url="https://a.example/hook", events=["plan_opened"], position=0),
                WebhookEndpoint(url="https://off.example/hook", events=[], active=False),
            ]
        )
        entries = [log(session, Event.plan_opened), log(session, Event.level_reached)]
        entries.append(log(session, Event.plan_opened))
        session.flush()
        first, _, last = (entry.id for entry in entries)

        assert [e.url for e in repository.active_endpoints(session)] == [
            "https://b.example/hook",
            "https://a.example/hook",
        ]
        assert repository.active_endpoint_urls(session) == {
            "https://a.example/hook",
            "https://b.example/hook",
        }
        assert repository.has_active_endpoint(session)
        assert repository.max_log_id(session) == last

        opened = [Event.plan_opened.value]
        scan = repository.entries_to_scan(session, events=opened, above=0, after=0, limit=10)
        assert [e.id for e in scan] == [first, last]
        assert [
            e.id
            for e in repository.entries_to_scan(
                session, events=opened, above=first, after=0, limit=10
            )
        ] == [last]
        # the rescan window brings back the recent entries below the floor
        rescanned = repository.entries_to_scan(
            session,
            events=opened,
            above=last,
            after=0,
            limit=10,
            recent_since=now - timedelta(minutes=10),
            recent_above=0,
        )
        assert [e.id for e in rescanned] == [first, last]
        assert [
            e.id
            for e in repository.entries_to_scan(session, events=opened, above=0, after=0, limit=1)
        ] == [first]

        for entry_id, at in ((first, now - timedelta(minutes=1)), (last, now + timedelta(hours=1))):
            session.add(
                WebhookDelivery(
                    url="https://a.example/hook",
                    event="plan_opened",
                    log_entry_id=entry_id,
                    payload={"id": f"evt_{entry_id}"},
                    status=DeliveryStatus.pending.value,
                    next_attempt_at=at,
                )
            )
        session.flush()
        assert repository.queued_pairs(session, [first, last]) == {
            ("https://a.example/hook", first),
            ("https://a.example/hook", last),
        }
        assert repository.has_pending_delivery(session)
        assert repository.count_due(session, now) == 1
        (due,) = repository.claimable_ids(session, now=now, size=10)
        assert [d.log_entry_id for d in repository.deliveries_by_ids(session, [due])] == [first]
        locked = repository.lock_delivery(session, due)
        assert locked is not None and locked.log_entry_id == first
        assert repository.plans_by_id(session, []) == {}
