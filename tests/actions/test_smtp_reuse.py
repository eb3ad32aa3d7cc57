"""One SMTP connection carries a whole batch of emails (issue: Actions that do real work)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import (
    execute,
    make_acme_customer,
    make_acme_invoice,
    make_acme_policy,
    make_action,
    make_env,
    make_instance,
    make_plan,
    make_template,
)


@dataclass
class SessionCounter:
    sessions: set[int] = field(default_factory=set)
    messages: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.sessions.add(id(session))
        self.messages += 1
        return "250 OK"


def test_a_batch_of_emails_shares_one_connection(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    counter = SessionCounter()
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with session_factory() as s, s.begin():
            make_template(s, "notice", language="en", subject="Overdue", position=0)
            action = make_action(s, "email_notice", "send_email", template="notice")
            policy = make_acme_policy(s, levels=[("first", 5, ["email_notice"]), ("final", 90, [])])
            for n in range(5):
                customer = make_acme_customer(s, f"C{n}", email=f"c{n}@example.test")
                invoice = make_acme_invoice(s, customer, f"I{n}")
                plan = make_plan(s, invoice, policy, level="first")
                make_instance(s, action, plan=plan, level="first")
        stats = execute(
            session_factory, make_env(db_url, tmp_path, smtp_url=f"smtp://127.0.0.1:{port}")
        )
    finally:
        controller.stop()
    assert stats.done == 5
    assert counter.messages == 5
    assert len(counter.sessions) == 1
