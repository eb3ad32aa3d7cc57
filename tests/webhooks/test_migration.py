"""0009_webhooks keeps the endpoints of an existing installation working: each gets a secret of
its own, and its delivery log is linked to it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from sqlalchemy import Engine, MetaData, insert, select

from recoup.core.migrate import upgrade


def test_existing_endpoints_get_their_own_secret_and_their_deliveries(
    empty_engine: Engine,
) -> None:
    engine = empty_engine
    upgrade(engine, "0008_api_keys")
    now = datetime(2026, 11, 1, tzinfo=UTC)
    metadata = MetaData()
    metadata.reflect(engine)
    tables = metadata.tables
    urls = ["https://a.example/hook", "https://b.example/hook"]
    with engine.begin() as conn:
        conn.execute(
            insert(tables["webhook_endpoints"]),
            [
                {
                    "id": n + 1,
                    "url": url,
                    "events": ["plan_opened"],
                    "active": True,
                    "position": n,
                    "start_log_id": 0,
                    "cursor_log_id": 0,
                    "created_at": now,
                }
                for n, url in enumerate(urls)
            ],
        )
        conn.execute(
            insert(tables["log_entries"]),
            [{"id": 1, "at": now, "event": "plan_opened", "actor": "system", "details": {}}],
        )
        conn.execute(
            insert(tables["webhook_deliveries"]),
            [
                {
                    "url": url,
                    "event": "plan_opened",
                    "log_entry_id": 1,
                    "payload": {"id": "evt_1"},
                    "status": "delivered",
                    "attempts": 1,
                    "created_at": now,
                }
                for url in [*urls, "https://removed.example/hook"]
            ],
        )
    upgrade(engine)
    metadata = MetaData()
    metadata.reflect(engine)
    endpoints = metadata.tables["webhook_endpoints"]
    deliveries = metadata.tables["webhook_deliveries"]
    with engine.connect() as conn:
        secrets = conn.execute(select(endpoints.c.secret).order_by(endpoints.c.id)).scalars()
        found = list(secrets)
        links = conn.execute(
            select(deliveries.c.url, deliveries.c.endpoint_id).order_by(deliveries.c.id)
        ).all()
    assert len(set(found)) == 2
    for secret in found:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert links == [
        ("https://a.example/hook", 1),
        ("https://b.example/hook", 2),
        ("https://removed.example/hook", None),
    ]
