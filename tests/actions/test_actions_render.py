"""Template rendering: language choice, Babel filters, strict and sandboxed Jinja2."""

from __future__ import annotations

import email
import email.policy
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from babel.dates import format_date
from babel.numbers import format_currency
from sqlalchemy.orm import Session, sessionmaker

from recoup.domain.money import Money
from recoup.messages.render import (
    TemplateError,
    TemplateNotFound,
    babel_locale,
    build_variables,
    render_string,
    render_template,
    select_template,
)
from recoup.models import Charge, LevelRow
from recoup.settings.service import get_settings
from tests.factories import (
    TODAY,
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

VARS = {
    "balance": Money(Decimal("1234.5"), "EUR"),
    "customer": {"name": "Dupont <SA>"},
    "today": date(2024, 3, 1),
    "locale": "fr",
}


@pytest.mark.parametrize(
    ("language", "expected"),
    [("fr", "fr"), ("fr_CA", "fr_CA"), ("fr-BE", "fr_BE"), ("xx", "en"), (None, "en"), ("", "en")],
)
def test_babel_locale(language: str | None, expected: str) -> None:
    assert babel_locale(language) == expected


@pytest.mark.parametrize(
    ("source", "variables", "expected"),
    [
        ("{{ balance|money }}", {}, format_currency(Decimal("1234.5"), "EUR", locale="fr")),
        ("{{ 12|money('USD') }}", {}, format_currency(Decimal(12), "USD", locale="fr")),
        ("{{ 12|money }}", {}, format_currency(Decimal(12), "EUR", locale="fr")),  # balance's
        ("{{ today|date }}", {}, format_date(date(2024, 3, 1), "medium", locale="fr")),
        ("{{ today|date('long') }}", {"locale": "en"}, "March 1, 2024"),
        ("{{ balance|money }}", {"locale": "en"}, "€1,234.50"),
        ("{{ balance|money }}", {"locale": "de"}, "1.234,50\xa0€"),
    ],
)
def test_filters(source: str, variables: dict[str, object], expected: str) -> None:
    assert render_string(source, {**VARS, **variables}, name="t") == expected


def test_unknown_variable_is_a_clear_error() -> None:
    with pytest.raises(TemplateError, match=r"template notice \(fr\): .*nickname"):
        render_string("Hi {{ customer.nickname }}", VARS, name="notice (fr)")
    with pytest.raises(TemplateError, match="template t: line 1: 'nobody' is undefined"):
        render_string("{{ nobody }}", VARS, name="t")
    with pytest.raises(TemplateError, match="template t: line 1: syntax error"):
        render_string("{{ balance|money ", VARS, name="t")


def test_sandbox_refuses_internals() -> None:
    with pytest.raises(TemplateError):
        render_string("{{ balance.__class__.__mro__ }}", VARS, name="t")
    with pytest.raises(TemplateError):
        render_string("{{ customer.clear() }}", VARS, name="t")


def test_html_bodies_are_escaped_text_bodies_are_not() -> None:
    assert render_string("{{ customer.name }}", VARS, name="t") == "Dupont <SA>"
    assert render_string("{{ customer.name }}", VARS, name="t", autoescape=True) == (
        "Dupont &lt;SA&gt;"
    )


def _seed(factory: sessionmaker[Session]) -> None:
    with factory() as s, s.begin():
        make_template(s, "notice", language="en", subject="EN", body="en body", position=0)
        make_template(s, "notice", language="fr", subject="FR", body="fr body", position=1)
        make_template(s, "notice", language="de", subject="DE", body="x", active=False)
        make_template(s, "late", language="es", subject="ES", body="x", position=5)
        make_template(s, "late", language="it", subject="IT", body="x", position=2)


@pytest.mark.parametrize(
    ("code", "language", "expected"),
    [
        ("notice", "fr", "fr"),
        ("notice", "fr_CA", "fr"),
        ("notice", "FR-ca", "fr"),
        ("notice", "en", "en"),
        ("notice", "de", "en"),  # inactive German: the first language defined
        ("notice", None, "en"),
        ("late", "fr", "it"),  # lowest position first
        ("missing", "fr", None),
    ],
)
def test_select_template(
    session_factory: sessionmaker[Session], code: str, language: str | None, expected: str | None
) -> None:
    _seed(session_factory)
    with session_factory() as s:
        row = select_template(s, code, "email", language)
        assert (row.language if row is not None else None) == expected


def test_render_template_for_preview(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        get_settings(s).company = {"name": "Recoup Demo", "email": "ar@demo.test"}
        customer = make_acme_customer(s, language="fr_CA", name="Tremblay")
        invoice = make_acme_invoice(s, customer, amount=Decimal("99.90"))
        make_template(
            s,
            "notice",
            language="fr",
            subject="{{ company.name }} : facture {{ invoice.number }}",
            body="<p>Bonjour {{ customer.name }}, solde {{ balance|money }}, "
            "{{ invoices|length }} facture(s), échue le {{ invoice.due_date|date }}.</p>",
        )
        rendered = render_template(
            s, "notice", "email", customer=customer, invoice=invoice, today=TODAY
        )
    assert rendered.language == "fr"
    assert rendered.subject == "Recoup Demo : facture INV-I1"
    amount = format_currency(Decimal("99.90"), "EUR", locale="fr_CA")
    assert rendered.html is not None and amount in rendered.html
    assert rendered.text.startswith(f"Bonjour Tremblay, solde {amount}, 1 facture(s)")
    with session_factory() as s:
        customer = s.get(type(customer), customer.id)
        assert customer is not None
        with pytest.raises(TemplateNotFound, match="no active template nope"):
            render_template(s, "nope", "email", customer=customer, today=TODAY)


def _shape(value: object) -> object:
    """The variable names and, for the views, their field names (what strictness checks)."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items() if key != "attributes"}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return None


def test_the_sample_context_has_exactly_the_real_contexts_variables(
    session_factory: sessionmaker[Session],
) -> None:
    """`config validate` renders against sample_variables(); a template passing it must find
    the same names at run time."""
    from recoup.actions.context import load_context
    from recoup.core.env import EnvConfig
    from recoup.messages.render import build_variables, sample_variables
    from tests.factories import NOW, make_acme_policy, make_action, make_instance, make_plan

    with session_factory() as session, session.begin():
        customer = make_acme_customer(session)
        invoice = make_acme_invoice(session, customer)
        policy = make_acme_policy(session, levels=[("first", 5, ["email"]), ("end", 30, [])])
        action = make_action(session, "email", "send_email", template="notice_1")
        plan = make_plan(session, invoice, policy, level="first")
        instance = make_instance(session, action, plan=plan, level="first")
        ctx = load_context(
            session,
            instance,
            env=EnvConfig(database_url="", data_dir=Path("."), smtp_url=None, user=None),
            today=TODAY,
            now=NOW,
        )
        real = build_variables(
            customer=ctx.customer,
            today=ctx.today,
            invoice=ctx.invoice,
            invoices=ctx.invoices,
            plan=ctx.plan,
            level=ctx.level,
            balance=ctx.balance,
            company={},
        )
    sample = sample_variables(mode="invoice")
    assert set(sample) == set(real)
    # the real plan has no charge nor fee to come: compare those by their fields
    lists = ("charges", "level_fees")
    assert _shape({k: v for k, v in sample.items() if k not in lists}) == _shape(
        {k: v for k, v in real.items() if k not in lists}
    )
    charge = sample["charges"][0]
    assert set(charge) == {"id", "amount", "currency", "service", "kind", "status", "created_on"}
    assert set(sample["level_fees"][0]) == {"action", "service", "kind", "amount"}
    assert isinstance(sample["fees_total"], Money) and isinstance(sample["total_due"], Money)
    customer_mode = sample_variables(mode="customer")
    assert customer_mode["invoice"] is None and len(customer_mode["invoices"]) == 2
    reminder = sample_variables(mode="customer", reminder=True)
    assert reminder["plan"] is None and reminder["invoice"] is not None


def test_concatenation_escapes_once() -> None:
    """`~` goes through the sandbox's size check and still escapes like Jinja: once."""
    source = "{{ '<b>'|safe ~ 'x<' }}|{{ 'a' ~ '<' }}|{{ customer.name ~ 1 }}"
    assert render_string(source, VARS, name="t", autoescape=True) == (
        "<b>x&lt;|a&lt;|Dupont &lt;SA&gt;1"
    )
    assert render_string(source, VARS, name="t") == "<b>x<|a<|Dupont <SA>1"


# --- what templates see about fees (SPEC §3) -----------------------------------------------


FEES_BODY = (
    "{% for c in charges %}{{ c.service }} {{ c.amount|money }} {{ c.status }} "
    "{{ c.created_on|date }}; {% endfor %}fees {{ fees_total|money }}, due {{ total_due|money }}, "
    "by {{ deadline|date if deadline else 'no deadline' }}, pay {{ pay_url }}"
)


def _fee_variables(
    session: Session, *, deadline_days: int | None, pay_url: str | None
) -> dict[str, object]:
    customer = make_acme_customer(session, language="en")
    invoice = make_acme_invoice(session, customer, amount=Decimal("100.00"))
    charges = [
        Charge(
            id=n,
            amount=Decimal(amount),
            currency="EUR",
            service=service,
            kind="late_fee_fixed",
            status=status,
            created_on=date(2024, 2, n),
        )
        for n, (amount, service, status) in enumerate(
            [("15.00", "FEE", "open"), ("2.50", "INT", "open"), ("40.00", "OLD", "waived")],
            start=1,
        )
    ]
    company = {"name": "Nimbus"} | ({"pay_url": pay_url} if pay_url else {})
    level = LevelRow(code="first", days=5, reminder=False, end=False, deadline_days=deadline_days)
    return build_variables(
        customer=customer,
        today=TODAY,
        invoice=invoice,
        level=level,
        company=company,
        charges=charges,
    )


def test_templates_see_charges_fees_total_due_deadline_and_pay_url(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as s:
        variables = _fee_variables(
            s, deadline_days=8, pay_url="https://pay.example/{{ invoice.id }}?c={{ customer.id }}"
        )
        text = render_string(FEES_BODY, variables, name="t")
        s.rollback()
    assert text == (
        "FEE €15.00 open Feb 1, 2024; INT €2.50 open Feb 2, 2024; OLD €40.00 waived Feb 3, 2024; "
        "fees €17.50, due €117.50, by Mar 9, 2024, pay https://pay.example/I1?c=C1"
    )


def test_without_deadline_pay_url_or_charges_the_variables_are_empty(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as s:
        customer = make_acme_customer(s)
        invoice = make_acme_invoice(s, customer, amount=Decimal("100.00"))
        variables = build_variables(customer=customer, today=TODAY, invoice=invoice)
        s.rollback()
    assert variables["charges"] == [] and variables["deadline"] is None
    assert variables["pay_url"] is None
    assert variables["fees_total"] == Money(Decimal(0), "EUR")
    assert variables["total_due"] == Money(Decimal("100.00"), "EUR")


def test_a_bad_pay_url_pattern_is_a_template_error_naming_it(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as s:
        with pytest.raises(TemplateError, match=r"settings\.company\.pay_url: .*numbr"):
            _fee_variables(s, deadline_days=None, pay_url="https://pay.example/{{ invoice.numbr }}")
        s.rollback()


def test_an_email_states_the_plans_open_fees_and_total_due(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    """The executor gives the template the plan's charges (here: one from an earlier level)."""
    with session_factory() as s, s.begin():
        customer = make_acme_customer(s)
        invoice = make_acme_invoice(s, customer, amount=Decimal("100.00"))
        make_template(
            s, "notice_2", body="Fees {{ fees_total|money }}, total {{ total_due|money }}"
        )
        fee = make_action(s, "fee", "late_fee_fixed", amounts={"EUR": "15"}, service="FEE")
        send = make_action(s, "email_notice_2", "send_email", template="notice_2")
        policy = make_acme_policy(
            s, levels=[("first", 5, ["fee"]), ("second", 10, ["email_notice_2"])]
        )
        plan = make_plan(s, invoice, policy, level="second")
        earlier = make_instance(s, fee, plan=plan, level="first", status="done")
        s.add(
            Charge(
                action_instance_id=earlier.id,
                customer_id=customer.id,
                invoice_id=invoice.id,
                plan_id=plan.id,
                amount=Decimal("15.00"),
                currency="EUR",
                service="FEE",
                kind="late_fee_fixed",
                created_on=TODAY,
            )
        )
        make_instance(s, send, plan=plan, level="second")
    env = make_env(db_url, tmp_path)
    assert execute(session_factory, env).done == 1
    [path] = sorted(env.outbox_dir.glob("*.eml"))
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content().strip() == "Fees €15.00, total €115.00"
