"""send_email through a real SMTP server (aiosmtpd in the test process) and the outbox;
retries with backoff when the server is down; nothing sent for a paid debt (R8)."""

from __future__ import annotations

import email
import email.policy
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from babel.numbers import format_currency
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from recoup.domain.retry import TRANSPORT_HORIZON, transport_backoff
from recoup.messages.email import message_id_for, parse_smtp_url, safe_filename
from recoup.models import ActionInstance, LogEntry, Plan, PlanInvoice, Task
from tests.factories import (
    NOW,
    execute,
    make_acme_customer,
    make_acme_invoice,
    make_acme_policy,
    make_action,
    make_env,
    make_instance,
    make_plan,
    make_template,
    rearm,
)

PDF_BYTES = b"%PDF-1.4\n% test invoice\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"

EN_SUBJECT = "Invoice {{ invoice.number }} is overdue: {{ balance|money }}"
FR_SUBJECT = "Facture {{ invoice.number }} impayée : {{ balance|money }}"
FR_BODY = (
    "Bonjour {{ customer.name }},\n\nMerci de régler {{ balance|money }} "
    "(échéance {{ invoice.due_date|date }}).\n"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Collector:
    envelopes: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.envelopes.append(envelope)
        return "250 OK"

    def messages(self) -> list[EmailMessage]:
        return [
            email.message_from_bytes(e.content, policy=email.policy.default)  # type: ignore[misc]
            for e in self.envelopes
        ]


@dataclass
class SmtpServer:
    url: str
    collector: Collector


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    collector = Collector()
    port = _free_port()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(url=f"smtp://127.0.0.1:{port}", collector=collector)
    finally:
        controller.stop()


def _setup(
    factory: sessionmaker[Session],
    *,
    language: str | None = "fr",
    email_address: str | None = "compta@exemple.fr",
    pdf_path: str | None = None,
    attach_invoice: bool = False,
    invoice_status: str = "open",
    amount_due: Decimal | None = None,
    fr_body: str = FR_BODY,
) -> int:
    with factory() as s, s.begin():
        customer = make_acme_customer(s, name="Dupont SA", email=email_address, language=language)
        invoice = make_acme_invoice(
            s,
            customer,
            number="F-2024-001",
            amount=Decimal("1234.50"),
            amount_due=amount_due,
            pdf_path=pdf_path,
            status=invoice_status,
        )
        make_template(s, "notice_1", language="en", subject=EN_SUBJECT, position=0)
        make_template(s, "notice_1", language="fr", subject=FR_SUBJECT, body=fr_body, position=1)
        action = make_action(s, "email_notice_1", "send_email", template="notice_1")
        policy = make_acme_policy(
            s,
            levels=[("first", 5, ["email_notice_1"]), ("final", 90, [])],
            attach_invoice=attach_invoice,
        )
        plan = make_plan(s, invoice, policy, level="first")
        return make_instance(s, action, plan=plan, level="first").id


def _instance(factory: sessionmaker[Session], instance_id: int) -> ActionInstance:
    with factory() as s:
        instance = s.get(ActionInstance, instance_id)
        assert instance is not None
        return instance


def _events(factory: sessionmaker[Session], event: str) -> list[LogEntry]:
    with factory() as s:
        return list(
            s.scalars(select(LogEntry).where(LogEntry.event == event).order_by(LogEntry.id))
        )


def test_email_in_the_customers_language_with_pdf_and_stable_message_id(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    smtp_server: SmtpServer,
) -> None:
    env = make_env(db_url, tmp_path, smtp_url=smtp_server.url)
    env.invoices_dir.mkdir(parents=True)
    (env.invoices_dir / "F-2024-001.pdf").write_bytes(PDF_BYTES)
    instance_id = _setup(session_factory, pdf_path="F-2024-001.pdf", attach_invoice=True)

    stats = execute(session_factory, env)
    assert (stats.done, stats.failed, stats.retried, stats.skipped) == (1, 0, 0, 0)

    [envelope] = smtp_server.collector.envelopes
    assert envelope.rcpt_tos == ["compta@exemple.fr"]
    [msg] = smtp_server.collector.messages()
    amount = format_currency(Decimal("1234.50"), "EUR", locale="fr")
    assert msg["Subject"] == f"Facture F-2024-001 impayée : {amount}"
    assert "1 234,50" in amount.replace("\u202f", " ").replace("\xa0", " ")
    text_part = msg.get_body(preferencelist=("plain",))
    html_part = msg.get_body(preferencelist=("html",))
    assert text_part is not None and html_part is not None
    assert f"Merci de régler {amount}" in text_part.get_content()
    assert "Dupont SA" in html_part.get_content()
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "F-2024-001.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == PDF_BYTES

    instance = _instance(session_factory, instance_id)
    assert instance.status == "done"
    assert msg["Message-ID"] == message_id_for(instance.key)
    assert instance.result is not None and instance.result["language"] == "fr"
    [done] = _events(session_factory, "action_done")
    assert done.details["message_id"] == msg["Message-ID"]
    assert _events(session_factory, "reminder_sent") == []  # a plan's email, not a reminder

    # a retry of the same instance sends a message with the same Message-ID
    rearm(session_factory, instance_id)
    execute(session_factory, env)
    second = smtp_server.collector.messages()[1]
    assert second["Message-ID"] == msg["Message-ID"]


def test_english_customer_gets_the_english_template(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    smtp_server: SmtpServer,
) -> None:
    _setup(session_factory, language="en", email_address="ap@example.com")
    execute(session_factory, make_env(db_url, tmp_path, smtp_url=smtp_server.url))
    [msg] = smtp_server.collector.messages()
    amount = format_currency(Decimal("1234.50"), "EUR", locale="en")
    assert msg["Subject"] == f"Invoice F-2024-001 is overdue: {amount}"
    assert amount == "€1,234.50"
    assert msg["To"] == "Dupont SA <ap@example.com>"


def test_missing_pdf_is_logged_and_the_email_goes_without_it(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    smtp_server: SmtpServer,
) -> None:
    instance_id = _setup(session_factory, pdf_path="nowhere.pdf", attach_invoice=True)
    execute(session_factory, make_env(db_url, tmp_path, smtp_url=smtp_server.url))
    [msg] = smtp_server.collector.messages()
    assert list(msg.iter_attachments()) == []
    instance = _instance(session_factory, instance_id)
    assert instance.result is not None
    assert instance.result["missing_attachments"] == ["nowhere.pdf"]
    [done] = _events(session_factory, "action_done")
    assert done.details["missing_attachments"] == ["nowhere.pdf"]


def test_outbox_mode_writes_one_eml_per_instance(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    instance_id = _setup(session_factory)
    env = make_env(db_url, tmp_path)
    execute(session_factory, env)
    rearm(session_factory, instance_id)
    execute(session_factory, env)  # the retry overwrites the same file
    instance = _instance(session_factory, instance_id)
    files = sorted(env.outbox_dir.glob("*.eml"))
    assert instance.key == f"plan:{instance.plan_id}:first:email_notice_1"
    assert [f.name for f in files] == [f"{instance_id:010d}-{safe_filename(instance.key)}.eml"]
    assert safe_filename(instance.key) == f"plan_{instance.plan_id}_first_email_notice_1"
    msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert msg["To"] == "Dupont SA <compta@exemple.fr>"
    assert msg["Message-ID"] == message_id_for(instance.key)
    assert instance.result is not None and instance.result["delivery"] == "outbox"


def test_smtp_down_retries_with_backoff_then_fails_with_a_collector_task(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    """A server that stays down: retried over hours (recoup.domain.retry), without using up
    attempts, then failed at the horizon with a task for a collector."""
    instance_id = _setup(session_factory)
    env = make_env(db_url, tmp_path, smtp_url=f"smtp://127.0.0.1:{_free_port()}")
    now = NOW
    for failures in range(1, 100):
        stats = execute(session_factory, env, now=now)
        instance = _instance(session_factory, instance_id)
        if instance.status == "failed":
            break
        assert (stats.retried, stats.failed, stats.done) == (1, 0, 0)
        assert (instance.status, instance.attempts) == ("pending", 0)
        assert instance.transport_failures == failures
        assert instance.error is not None and "unreachable" in instance.error
        assert instance.next_attempt_at is not None
        delay = instance.next_attempt_at - now
        expected = transport_backoff(failures)
        assert expected * 0.9 <= delay <= expected * 1.1
        # not due yet: nothing happens before the backoff is over
        assert execute(session_factory, env, now=now + delay / 2).retried == 0
        now = instance.next_attempt_at
    assert now - NOW >= TRANSPORT_HORIZON * 0.9
    assert (stats.retried, stats.failed) == (0, 1)
    assert (instance.attempts, instance.transport_failures) == (0, failures)
    retries = _events(session_factory, "action_retry")
    assert len(retries) == failures - 1
    assert all(r.details["error"] and r.details["kind"] == "transport" for r in retries)
    [failed] = _events(session_factory, "action_failed")
    assert "unreachable for" in failed.details["gave_up"]
    with session_factory() as s:
        [task] = s.scalars(select(Task)).all()
        assert task.role == "collector"
        assert task.status == "open"
        assert task.plan_id == instance.plan_id
        assert task.action_instance_id == instance_id
        assert task.instructions is not None and "email_notice_1" in task.instructions
        assert f"plan {instance.plan_id}" in task.instructions
    assert len(_events(session_factory, "task_created")) == 1


def test_a_paid_invoices_pending_reminder_is_skipped_never_sent(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    smtp_server: SmtpServer,
) -> None:
    with session_factory() as s, s.begin():
        customer = make_acme_customer(s, language="en")
        paid = make_acme_invoice(
            s, customer, "PAID", due_date=date(2024, 3, 4), amount_due=Decimal(0), status="paid"
        )
        due = make_acme_invoice(s, customer, "DUE", due_date=date(2024, 3, 4))
        make_template(s, "reminder", subject="Invoice {{ invoice.number }} is due soon")
        action = make_action(s, "email_reminder", "send_email", template="reminder")
        policy = make_acme_policy(
            s, levels=[("before_due", -3, ["email_reminder"]), ("final", 90, [])]
        )
        paid_id = make_instance(s, action, invoice=paid, policy=policy, level="before_due").id
        due_id = make_instance(s, action, invoice=due, policy=policy, level="before_due").id

    stats = execute(session_factory, make_env(db_url, tmp_path, smtp_url=smtp_server.url))
    assert (stats.done, stats.skipped) == (1, 1)
    [msg] = smtp_server.collector.messages()
    assert msg["Subject"] == "Invoice INV-DUE is due soon"
    assert _instance(session_factory, paid_id).status == "skipped"
    assert _instance(session_factory, due_id).status == "done"
    [skipped] = _events(session_factory, "action_skipped")
    assert skipped.invoice_id == "PAID"
    assert skipped.details["reason"] == "invoice INV-PAID is paid"
    [sent] = _events(session_factory, "reminder_sent")
    assert sent.invoice_id == "DUE" and sent.plan_id is None


def test_plan_paid_meanwhile_is_skipped(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    smtp_server: SmtpServer,
) -> None:
    instance_id = _setup(session_factory, invoice_status="paid", amount_due=Decimal(0))
    stats = execute(session_factory, make_env(db_url, tmp_path, smtp_url=smtp_server.url))
    assert stats.skipped == 1
    assert smtp_server.collector.envelopes == []
    assert _instance(session_factory, instance_id).status == "skipped"


def test_customer_without_email_is_skipped(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    smtp_server: SmtpServer,
) -> None:
    instance_id = _setup(session_factory, email_address=None)
    execute(session_factory, make_env(db_url, tmp_path, smtp_url=smtp_server.url))
    assert smtp_server.collector.envelopes == []
    instance = _instance(session_factory, instance_id)
    assert instance.status == "skipped"
    assert instance.result == {"reason": "customer has no email"}
    [skipped] = _events(session_factory, "action_skipped")
    assert skipped.details["reason"] == "customer has no email"


def test_no_active_template_is_skipped_with_reason(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    with session_factory() as s, s.begin():
        customer = make_acme_customer(s, language="de")
        invoice = make_acme_invoice(s, customer)
        make_template(s, "notice_1", language="en", active=False)
        action = make_action(s, "mail", "send_email", template="notice_1")
        policy = make_acme_policy(s, levels=[("first", 5, ["mail"]), ("final", 90, [])])
        plan = make_plan(s, invoice, policy, level="first")
        make_instance(s, action, plan=plan, level="first")
    stats = execute(session_factory, make_env(db_url, tmp_path))
    assert stats.skipped == 1
    [skipped] = _events(session_factory, "action_skipped")
    assert skipped.details["reason"] == "no active template notice_1 for language de"


def test_broken_template_fails_at_once_with_a_task(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    with session_factory() as s, s.begin():
        customer = make_acme_customer(s)
        invoice = make_acme_invoice(s, customer)
        make_template(s, "notice_1", body="Hello {{ customer.nickname }}")
        action = make_action(s, "mail", "send_email", template="notice_1")
        policy = make_acme_policy(s, levels=[("first", 5, ["mail"]), ("final", 90, [])])
        plan = make_plan(s, invoice, policy, level="first")
        instance_id = make_instance(s, action, plan=plan, level="first").id
    stats = execute(session_factory, make_env(db_url, tmp_path))
    assert (stats.failed, stats.retried) == (1, 0)
    instance = _instance(session_factory, instance_id)
    assert instance.status == "failed"
    assert instance.error is not None
    assert "notice_1 (en)" in instance.error and "nickname" in instance.error
    with session_factory() as s:
        assert len(s.scalars(select(Task)).all()) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_login(session_factory: sessionmaker[Session], db_url: str, tmp_path: Path) -> None:
    collector = Collector()
    port = _free_port()

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
        ok = isinstance(auth, LoginPassword) and (auth.login, auth.password) == (
            b"dunning",
            b"s3cr:t",
        )
        return AuthResult(success=ok)

    controller = Controller(
        collector,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    try:
        _setup(session_factory)
        url = f"smtp://dunning:s3cr%3At@127.0.0.1:{port}?insecure=true"  # no TLS: said so
        stats = execute(session_factory, make_env(db_url, tmp_path, smtp_url=url))
        assert stats.done == 1
        assert len(collector.envelopes) == 1
    finally:
        controller.stop()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", ("mail.example.com", 25, False, False, None, None)),
        (
            "smtp://u%40x:p%2Fw@mail.example.com:2525?starttls=true",
            ("mail.example.com", 2525, False, True, "u@x", "p/w"),
        ),
        ("smtp://h?starttls=true", ("h", 587, False, True, None, None)),
        ("smtps://u:p@h", ("h", 465, True, False, "u", "p")),
    ],
)
def test_parse_smtp_url(url: str, expected: tuple[object, ...]) -> None:
    t = parse_smtp_url(url)
    assert (t.host, t.port, t.ssl, t.starttls, t.username, t.password) == expected


def test_message_id_is_stable_and_key_specific() -> None:
    assert message_id_for("plan:1:first:mail") == message_id_for("plan:1:first:mail")
    assert message_id_for("plan:1:first:mail") != message_id_for("plan:2:first:mail")
    assert message_id_for("plan:1:first:mail").endswith("@recoup>")


def test_customer_mode_email_lists_the_plans_invoices_with_their_pdfs(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    env = make_env(db_url, tmp_path)
    env.invoices_dir.mkdir(parents=True)
    for name in ("A.pdf", "B.pdf"):
        (env.invoices_dir / name).write_bytes(PDF_BYTES + name.encode())
    with session_factory() as s, s.begin():
        customer = make_acme_customer(s, language="en")
        a = make_acme_invoice(s, customer, "A", amount=Decimal("100.00"), pdf_path="A.pdf")
        b = make_acme_invoice(
            s,
            customer,
            "B",
            amount=Decimal("50.25"),
            due_date=date(2024, 1, 15),
            pdf_path="B.pdf",
        )
        paid = make_acme_invoice(s, customer, "P", amount=Decimal("10"), amount_due=Decimal(0))
        paid.status = "paid"
        make_template(
            s,
            "statement",
            subject="{{ invoices|length }} invoices overdue, {{ balance|money }} in all",
            body="{% for i in invoices %}{{ i.number }}: {{ i.amount_due|money }}\n{% endfor %}",
        )
        action = make_action(s, "mail", "send_email", template="statement", attach_invoice=True)
        policy = make_acme_policy(s, levels=[("first", 5, ["mail"]), ("final", 90, [])])
        plan = Plan(
            customer_id=customer.id,
            invoice_id=None,
            currency="EUR",
            mode="customer",
            policy_id=policy.id,
            level="first",
            balance=Decimal("150.25"),
            opened_on=date(2024, 1, 6),
            anchor_date=date(2024, 1, 1),
            open_key="cust:C1:EUR",
        )
        s.add(plan)
        s.flush()
        for invoice in (a, b, paid):
            s.add(PlanInvoice(plan_id=plan.id, invoice_id=invoice.id, joined_on=plan.opened_on))
        s.flush()
        instance_id = make_instance(s, action, plan=plan, level="first").id
    assert execute(session_factory, env).done == 1
    [path] = env.outbox_dir.glob("*.eml")
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert msg["Subject"] == "2 invoices overdue, €150.25 in all"
    text = msg.get_body(preferencelist=("plain",))
    assert text is not None
    assert text.get_content() == "INV-A: €100.00\nINV-B: €50.25\n"
    assert [a.get_filename() for a in msg.iter_attachments()] == ["A.pdf", "B.pdf"]
    instance = _instance(session_factory, instance_id)
    assert instance.result is not None and instance.result["attachments"] == ["A.pdf", "B.pdf"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_smtp_starttls_and_login(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this server only
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins: list[bytes] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
        logins.append(auth.login)
        return AuthResult(success=(auth.login, auth.password) == (b"dunning", b"pw"))

    collector = Collector()
    port = _free_port()
    controller = Controller(
        collector,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    controller.start()
    try:
        _setup(session_factory)
        url = f"smtp://dunning:pw@127.0.0.1:{port}?starttls=true"
        stats = execute(session_factory, make_env(db_url, tmp_path, smtp_url=url))
        assert stats.done == 1
        assert logins == [b"dunning"]
        [msg] = collector.messages()
        assert msg["To"] == "Dupont SA <compta@exemple.fr>"
    finally:
        controller.stop()


def test_attach_invoice_with_no_pdf_is_recorded_in_the_result(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    instance_id = _setup(session_factory, attach_invoice=True)  # the invoice has no PDF
    execute(session_factory, make_env(db_url, tmp_path))
    instance = _instance(session_factory, instance_id)
    assert instance.status == "done" and instance.result is not None
    assert instance.result["attachments"] == []
    assert instance.result["attachments_missing"] == ["I1"]
    [done] = _events(session_factory, "action_done")
    assert done.details["attachments_missing"] == ["I1"]


def test_no_attachments_missing_when_none_was_asked_for(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    instance_id = _setup(session_factory)
    execute(session_factory, make_env(db_url, tmp_path))
    result = _instance(session_factory, instance_id).result
    assert result is not None and "attachments_missing" not in result


WRAPPED_BODY = """Bonjour {{ customer.name }},

Sauf erreur de notre part, la facture {{ invoice.number }} reste impayée. Le montant dû
est de {{ balance|money }}. Merci de procéder au règlement dans les meilleurs délais.

Cordialement,
Le service comptabilité clients
"""


def test_the_html_part_is_in_paragraphs_not_the_files_line_breaks(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    _setup(session_factory, fr_body=WRAPPED_BODY)
    env = make_env(db_url, tmp_path)
    execute(session_factory, env)
    [path] = sorted(env.outbox_dir.glob("*.eml"))
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    html_part = msg.get_body(preferencelist=("html",))
    assert html_part is not None
    markup = html_part.get_content()
    assert "<p>Bonjour Dupont SA,</p>" in markup
    # the wrapped sentence flows again; the closing keeps its two lines
    assert "Le montant dû est de" in markup
    assert "<p>Cordialement,<br>\nLe service comptabilité clients</p>" in markup
    assert markup.count("<br>") == 1
    text_part = msg.get_body(preferencelist=("plain",))
    assert text_part is not None and "Le montant dû\nest de" in text_part.get_content()


@pytest.mark.parametrize(
    ("text", "markup"),
    [
        ("One line.", "<p>One line.</p>"),
        (
            "A long line of prose that the file wrapped at its width\nand goes on.",
            "<p>A long line of prose that the file wrapped at its width and goes on.</p>",
        ),
        (
            "Kind regards,\nAcme accounts receivable",
            "<p>Kind regards,<br>\nAcme accounts receivable</p>",
        ),
        (
            "Open invoices, as the text lists them here:\n- F-1: 10 €\n- F-2: 20 €",
            "<p>Open invoices, as the text lists them here:<br>\n- F-1: 10 €<br>\n- F-2: 20 €</p>",
        ),
        ("a < b\n\n\n\nc & d", "<p>a &lt; b</p>\n<p>c &amp; d</p>"),
    ],
)
def test_paragraphs_html(text: str, markup: str) -> None:
    from recoup.messages.render import paragraphs_html

    assert paragraphs_html(text) == markup


FINAL_WORDS = {
    "en": "Final notice",
    "fr": ("Mise en demeure", "Dernier avis"),
    "de": "Letzte Mahnung",
}


def _end_level_templates() -> list[tuple[str, str | None, str]]:
    """(name, subject, language) of every shipped message sent at a policy's end level."""
    from tests.documents.test_letters import shipped

    found = []
    for channel in ("email", "letter"):
        for name, (template, config) in shipped(channel):
            actions = {a.code: a for a in config.actions}
            final = {
                str(actions[code].params.get("template"))
                for policy in config.policies
                for level in policy.levels
                if level.end
                for code in level.actions
                if code in actions
            }
            if template.code in final:
                found.append((name, template.subject, template.language))
    return found


@pytest.mark.parametrize(("name", "subject", "language"), _end_level_templates())
def test_a_shipped_final_notice_says_so_in_its_subject(
    name: str, subject: str | None, language: str
) -> None:
    words = FINAL_WORDS[language]
    assert subject is not None and subject.startswith(words), f"{name}: {subject!r}"


def test_every_end_level_of_the_shipped_policies_sends_a_final_notice() -> None:
    names = {name.split("/")[0] for name, _, _ in _end_level_templates()}
    assert names == {"demo", "examples"}
