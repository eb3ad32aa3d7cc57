"""send_letter end to end on SQLite and PostgreSQL: the customer's language, the PDF's content
(names, invoices, the total formatted by Babel), one Document per action instance however often
it is retried, the template fallback, the skip without a template, and an email carrying the
plan's latest letter."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from babel.numbers import format_currency
from pypdf import PdfReader
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from recoup.core.env import EnvConfig
from recoup.domain.money import Money
from recoup.messages.letter import body_markup, letter_html, recipient_lines
from recoup.messages.render import Rendered
from recoup.models import (
    ActionInstance,
    ActionRow,
    Charge,
    Customer,
    Document,
    Invoice,
    LogEntry,
    Plan,
    PlanInvoice,
    SettingsRow,
    TemplateRow,
)
from recoup.policies.document import config_to_dict
from recoup.policies.service import check_config
from tests.factories import (
    TODAY,
    execute,
    make_acme_customer,
    make_acme_invoice,
    make_acme_policy,
    make_action,
    make_env,
    make_instance,
    make_settings,
    make_template,
    rearm,
)

COMPANY = {
    "name": "Nimbus Cloud SAS",
    "address": "12 rue de la Paix\n75002 Paris\nFrance",
    "email": "recouvrement@nimbus.example",
    "phone": "+33 1 23 45 67 89",
    "vat": "FR12345678901",
    "city": "Paris",
}
FR_SUBJECT = "Mise en demeure : {{ balance|money }}"
FR_BODY = (
    "Madame, Monsieur,\n\nSauf erreur de notre part, {{ invoices|length }} factures restent "
    "impayées pour un total de {{ balance|money }}.\n\nMerci de régler sous huit jours."
)
EN_BODY = "Dear {{ customer.name }},\n\nPlease pay {{ balance|money }} within eight days."
AMOUNT_1 = Decimal("1234.50")
AMOUNT_2 = Decimal("430.25")


@dataclass(frozen=True)
class Book:
    plan_id: int
    instance_id: int


def letter_book(
    factory: sessionmaker[Session],
    *,
    language: str | None = "fr",
    address: str | None = "Boulangerie Dupont SARL\n4 place du Marché\n69001 Lyon",
    templates: tuple[str, ...] = ("fr", "en"),
    email_action: bool = False,
) -> Book:
    """A customer-mode plan on two overdue invoices at its `final` level, with a pending
    send_letter instance (and, with `email_action`, a send_email one with attach_letter)."""
    with factory() as session, session.begin():
        make_settings(session, company=dict(COMPANY))
        customer = make_acme_customer(
            session,
            "C1",
            name="Boulangerie Dupont SARL",
            language=language,
            country="FR",
            address=address,
        )
        first = make_acme_invoice(
            session,
            customer,
            "I1",
            number="F-2024-0012",
            amount=AMOUNT_1,
            due_date=date(2024, 1, 1),
        )
        second = make_acme_invoice(
            session,
            customer,
            "I2",
            number="F-2024-0031",
            amount=Decimal("860.00"),
            amount_due=AMOUNT_2,
            due_date=date(2024, 1, 20),
        )
        letter = make_action(session, "letter_final", "send_letter", template="final_letter")
        codes = ["letter_final"]
        if email_action:
            make_action(
                session, "email_final", "send_email", template="final_email", attach_letter=True
            )
            make_template(session, "final_email", subject="Final notice", body="See the letter.")
            codes.append("email_final")
        # `final` is not the end level: the plan stays active once its letter is out
        policy = make_acme_policy(session, levels=[("final", 20, codes), ("closing", 40, [])])
        for position, lang in enumerate(templates):
            fr = lang == "fr"
            make_template(
                session,
                "final_letter",
                channel="letter",
                language=lang,
                subject=FR_SUBJECT if fr else None,
                body=FR_BODY if fr else EN_BODY,
                position=position,
            )
        plan = Plan(
            customer_id=customer.id,
            invoice_id=None,
            currency="EUR",
            mode="customer",
            policy_id=policy.id,
            status="active",
            level="final",
            balance=AMOUNT_1 + AMOUNT_2,
            opened_on=date(2024, 1, 6),
            anchor_date=date(2024, 1, 1),
            open_key="cust:C1:EUR",
        )
        session.add(plan)
        session.flush()
        for invoice in (first, second):
            session.add(PlanInvoice(plan_id=plan.id, invoice_id=invoice.id, joined_on=TODAY))
        instance = make_instance(session, letter, plan=plan, level="final")
        return Book(plan_id=plan.id, instance_id=instance.id)


def pdf_text(path: str | Path) -> str:
    """The PDF's text with every kind of space (no-break, narrow no-break) made one space."""
    reader = PdfReader(str(path))
    return normalise("\n".join(page.extract_text() or "" for page in reader.pages))


def normalise(text: str) -> str:
    return re.sub(r"[\s\u00a0\u202f\u2009]+", " ", text).strip()


def documents(factory: sessionmaker[Session]) -> list[Document]:
    with factory() as session:
        return list(session.scalars(select(Document).order_by(Document.id)))


def test_letter_end_to_end_in_the_customers_language(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    book = letter_book(session_factory)
    env = make_env(db_url, tmp_path)
    stats = execute(session_factory, env)
    assert stats.done == 1, stats

    [document] = documents(session_factory)
    assert document.kind == "letter"
    assert document.plan_id == book.plan_id
    assert document.action_instance_id == book.instance_id
    assert sorted(document.invoice_ids) == ["I1", "I2"]
    expected_path = (
        env.documents_dir / str(book.plan_id) / f"{book.instance_id}-final-letter_final.pdf"
    )
    assert Path(document.path) == expected_path
    assert expected_path.read_bytes().startswith(b"%PDF")

    text = pdf_text(document.path)
    total = normalise(format_currency(AMOUNT_1 + AMOUNT_2, "EUR", locale="fr"))
    for needle in (
        "Boulangerie Dupont SARL",
        "F-2024-0012",
        "F-2024-0031",
        total,
        "Nimbus Cloud SAS",
    ):
        assert needle in text, (needle, text)
    assert normalise(format_currency(AMOUNT_2, "EUR", locale="fr")) in text
    assert "69001 Lyon" in text
    assert "Objet : Mise en demeure" in text  # the French template and layout
    assert "Paris, le 1 mars 2024" in text  # place and date by Babel in French
    assert "Dear" not in text

    with session_factory() as session:
        instance = session.get(ActionInstance, book.instance_id)
        assert instance is not None and instance.status == "done"
        assert instance.result is not None
        assert instance.result["document_id"] == document.id
        assert instance.result["path"] == str(expected_path)
        assert instance.result["pages"] == 1
        assert instance.result["language"] == "fr"
        assert instance.result["total"] == "1664.75"
        done = session.scalar(
            select(LogEntry).where(
                LogEntry.event == "action_done", LogEntry.plan_id == book.plan_id
            )
        )
        assert done is not None and done.details["document_id"] == document.id


def test_a_retry_overwrites_the_file_and_never_adds_a_document(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    book = letter_book(session_factory)
    env = make_env(db_url, tmp_path)
    execute(session_factory, env)
    [first] = documents(session_factory)

    rearm(session_factory, book.instance_id)  # finished, then run again
    assert execute(session_factory, env).done == 1
    [again] = documents(session_factory)
    assert again.id == first.id and again.path == first.path

    Path(first.path).unlink()  # the file lost: regenerated at the same place, same row
    rearm(session_factory, book.instance_id)
    assert execute(session_factory, env).done == 1
    [regenerated] = documents(session_factory)
    assert regenerated.id == first.id and Path(regenerated.path).is_file()
    assert sorted(p.name for p in Path(first.path).parent.iterdir()) == [Path(first.path).name]


def test_without_the_customers_language_the_first_template_is_used(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    letter_book(session_factory, language="de", templates=("en", "fr"), address=None)
    execute(session_factory, make_env(db_url, tmp_path))
    [document] = documents(session_factory)
    text = pdf_text(document.path)
    assert "Dear Boulangerie Dupont SARL" in text
    # German customer: the English wording, amounts and dates formatted for German
    assert normalise(format_currency(AMOUNT_1 + AMOUNT_2, "EUR", locale="de")) in text
    assert "Subject: Reminder: overdue invoices" in text
    assert "Frankreich" in text  # no address: name and country, in the customer's language


def test_no_letter_template_is_a_logged_skip(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    book = letter_book(session_factory, templates=())
    stats = execute(session_factory, make_env(db_url, tmp_path))
    assert stats.skipped == 1
    assert documents(session_factory) == []
    with session_factory() as session:
        entry = session.scalar(select(LogEntry).where(LogEntry.event == "action_skipped"))
        assert entry is not None and entry.plan_id == book.plan_id
        assert "no active letter template final_letter" in entry.details["reason"]


def _outbox_message(env: EnvConfig) -> EmailMessage:
    [path] = list(env.outbox_dir.glob("*.eml"))
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_an_email_with_attach_letter_carries_the_plans_latest_letter(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    book = letter_book(session_factory, email_action=True)
    env = make_env(db_url, tmp_path)
    with session_factory() as session, session.begin():
        plan = session.get(Plan, book.plan_id)
        assert plan is not None
        action = session.scalar(select(ActionRow).where(ActionRow.code == "email_final"))
        assert action is not None
        make_instance(session, action, plan=plan, level="final")
    # the letter first (ordered by id), then the email that attaches it
    stats = execute(session_factory, env)
    assert stats.done == 2, stats
    [document] = documents(session_factory)
    message = _outbox_message(env)
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == Path(document.path).name
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == Path(document.path).read_bytes()


def test_an_email_with_attach_letter_and_no_letter_says_so(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    book = letter_book(session_factory, email_action=True)
    env = make_env(db_url, tmp_path)
    with session_factory() as session, session.begin():
        letter_instance = session.get(ActionInstance, book.instance_id)
        assert letter_instance is not None
        letter_instance.status = "cancelled"
        letter_instance.next_attempt_at = None
        plan = session.get(Plan, book.plan_id)
        action = session.scalar(select(ActionRow).where(ActionRow.code == "email_final"))
        assert plan is not None and action is not None
        email_instance_id = make_instance(session, action, plan=plan, level="final").id
    assert execute(session_factory, env).done == 1
    assert list(_outbox_message(env).iter_attachments()) == []
    with session_factory() as session:
        instance = session.get(ActionInstance, email_instance_id)
        assert instance is not None and instance.result is not None
        assert instance.result["missing_attachments"] == ["letter (none generated yet)"]
        count = session.scalar(select(func.count()).select_from(Document))
        assert count == 0


# --- the layout, without a database -----------------------------------------------------------


def _customer(**fields: object) -> Customer:
    values: dict[str, object] = {"id": "C9", "name": "Acme <b>SA</b>", "language": "fr"}
    values.update(fields)
    return Customer(**values)


@pytest.mark.parametrize(
    ("address", "country", "language", "expected"),
    [
        (
            "Acme <b>SA</b>\n1 rue X\n75001 Paris",
            "FR",
            "fr",
            ["Acme <b>SA</b>", "1 rue X", "75001 Paris"],
        ),
        ("1 rue X\n\n75001 Paris\n", "FR", "fr", ["Acme <b>SA</b>", "1 rue X", "75001 Paris"]),
        (None, "DE", "fr", ["Acme <b>SA</b>", "Allemagne"]),
        (None, "DE", "en", ["Acme <b>SA</b>", "Germany"]),
        (None, None, "en", ["Acme <b>SA</b>"]),
    ],
)
def test_recipient_lines(
    address: str | None, country: str | None, language: str, expected: list[str]
) -> None:
    customer = _customer(address=address, country=country)
    assert recipient_lines(customer, language) == expected


def test_the_layout_escapes_data_and_keeps_an_html_templates_markup() -> None:
    rendered = Rendered(
        code="x",
        channel="letter",
        language="fr",
        subject=None,
        text="",
        html="<html><body><p>Payez <strong>vite</strong></p></body></html>",
    )
    invoice = Invoice(
        id="I1",
        number="F<1>",
        due_date=date(2024, 1, 1),
        currency="EUR",
        amount=Decimal("10.00"),
        amount_due=Decimal("10.00"),
    )
    document, total = letter_html(
        rendered,
        customer=_customer(address=None, country="FR"),
        invoices=[invoice],
        today=TODAY,
        company={"name": "Nimbus & Co", "address": ["1 rue Y", "75002 Paris"]},
    )
    assert total == Money(Decimal("10.00"), "EUR")
    assert "<p>Payez <strong>vite</strong></p>" in document
    assert "Acme &lt;b&gt;SA&lt;/b&gt;" in document and "Acme <b>SA</b>" not in document
    assert "F&lt;1&gt;" in document and "Nimbus &amp; Co" in document
    assert "Objet : Relance : factures impayées" in document  # not an end level


def test_a_plain_text_body_becomes_escaped_paragraphs() -> None:
    rendered = Rendered(
        code="x", channel="letter", language="en", subject=None, text="A < B\nC\n\nD\n", html=None
    )
    assert str(body_markup(rendered)) == "<p>A &lt; B<br>\nC</p>\n<p>D</p>"


def test_an_email_with_a_letter_template_generates_and_attaches_its_own_letter(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    book = letter_book(session_factory)
    env = make_env(db_url, tmp_path)
    with session_factory() as session, session.begin():
        letter_instance = session.get(ActionInstance, book.instance_id)
        assert letter_instance is not None
        letter_instance.status = "cancelled"  # no send_letter: the email makes the letter
        letter_instance.next_attempt_at = None
        make_template(session, "final_email", subject="Mise en demeure", body="Voir le courrier.")
        action = make_action(
            session,
            "email_final",
            "send_email",
            template="final_email",
            letter_template="final_letter",
        )
        plan = session.get(Plan, book.plan_id)
        assert plan is not None
        email_instance_id = make_instance(session, action, plan=plan, level="final").id
    assert execute(session_factory, env).done == 1
    [document] = documents(session_factory)
    assert document.action_instance_id == email_instance_id
    assert document.plan_id == book.plan_id and sorted(document.invoice_ids) == ["I1", "I2"]
    [attachment] = list(_outbox_message(env).iter_attachments())
    assert attachment.get_content() == Path(document.path).read_bytes()
    assert "F-2024-0031" in pdf_text(document.path)

    rearm(session_factory, email_instance_id)  # a retried email reuses its letter
    assert execute(session_factory, env).done == 1
    assert [d.id for d in documents(session_factory)] == [document.id]


def _email_config(**email: object) -> dict[str, object]:
    return {
        "templates": [
            {"code": "notice", "channel": "email", "language": "en", "subject": "S", "body": "B"},
            {"code": "final_letter", "channel": "letter", "language": "en", "body": "Pay"},
        ],
        "actions": [{"code": "email_notice", "type": "send_email", "template": "notice", **email}],
        "policies": [
            {
                "name": "Standard",
                "default": True,
                "priority": 10,
                "levels": [{"code": "final", "days": 20, "end": True, "actions": ["email_notice"]}],
            }
        ],
    }


@pytest.mark.parametrize(
    ("email", "problem"),
    [
        ({"attach_letter": True}, None),
        ({"attach_letter": True, "letter_template": "final_letter"}, None),
        ({"attach_letter": "yes"}, "actions[0].attach_letter: must be true or false"),
        (
            {"letter_template": "notice"},
            "actions[0].letter_template: template 'notice' is for email",
        ),
        ({"letter_template": "nope"}, "actions[0].letter_template: no template 'nope'"),
    ],
)
def test_config_accepts_attach_letter_and_checks_letter_template(
    email: dict[str, object], problem: str | None
) -> None:
    config, issues = check_config(_email_config(**email))
    messages = [f"{issue.path}: {issue.message}" for issue in issues]
    if problem is None:
        assert messages == []
        assert config_to_dict(config)["actions"][0] == {
            "code": "email_notice",
            "type": "send_email",
            "template": "notice",
            **email,
        }
    else:
        assert any(m.startswith(problem) for m in messages), messages


def _png() -> bytes:
    """A 1×1 PNG."""
    import base64

    return base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )


def test_a_letter_loads_data_urls_and_its_assets_but_not_a_link_out_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative URLs resolve in the assets folder; a symlink there that leads outside, an
    absolute path and `..` are refused (the PDF has no image for them)."""
    from recoup.messages import assets, letter

    folder = tmp_path / "assets"
    folder.mkdir()
    (folder / "logo.png").write_bytes(_png())
    outside = tmp_path / "outside.png"
    outside.write_bytes(_png())
    (folder / "link.png").symlink_to(outside)
    monkeypatch.setattr(assets, "ASSETS_DIR", folder.resolve())
    monkeypatch.setattr(letter, "BASE_URL", folder.resolve().as_uri() + "/")

    def images(markup: str) -> int:
        pdf = letter.to_pdf(f"<html><body><p>Letter</p>{markup}</body></html>")
        reader = PdfReader(__import__("io").BytesIO(pdf.content))
        return sum(
            1
            for page in reader.pages
            for obj in (page["/Resources"].get("/XObject") or {}).values()
            if obj.get_object().get("/Subtype") == "/Image"
        )

    data = "data:image/png;base64," + __import__("base64").b64encode(_png()).decode()
    assert images(f'<img src="{data}">') == 1
    assert images('<img src="logo.png">') == 1
    assert images('<img src="link.png">') == 0
    assert images(f'<img src="{outside.as_uri()}">') == 0
    assert images('<img src="../outside.png">') == 0


# --- the shipped templates (recoup/demo/policies.yaml, examples/policies.yaml) --------------

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [ROOT / "recoup" / "demo" / "policies.yaml", ROOT / "examples" / "policies.yaml"]
# every closing formula the shipped texts or the layout might use
CLOSINGS = re.compile(
    r"Yours (?:sincerely|faithfully)|Kind regards|Cordialement|Mit freundlichen Grüßen|"
    r"(?:Veuillez agréer|Nous vous prions d.agréer|salutations distinguées)[^.]*\."
)


def shipped(channel: str) -> list[tuple[str, Any]]:
    import yaml

    from recoup.policies.document import parse_config

    found = []
    for path in SHIPPED:
        parsed = parse_config(yaml.safe_load(path.read_text(encoding="utf-8")))
        assert not parsed.issues, parsed.issues
        found += [
            (f"{path.parent.name}/{t.code}/{t.language}", t, parsed.config)
            for t in parsed.config.templates
            if t.channel.value == channel
        ]
    return [(name, (template, config)) for name, template, config in found]


def _sample_book(language: str) -> tuple[Customer, list[Invoice]]:
    customer = Customer(
        id="C9",
        name="Boulangerie Dupont SARL",
        language=language,
        country="FR",
        address="4 place du Marché\n69001 Lyon",
        attributes={},
    )
    invoices = [
        Invoice(
            id=f"I{n}",
            customer_id="C9",
            number=f"F-2026-00{n}",
            type="commercial",
            issue_date=date(2026, 9, n),
            due_date=date(2026, 10, n),
            currency="EUR",
            amount=amount,
            amount_due=amount,
            status="open",
            disputed=False,
        )
        for n, amount in ((1, Decimal("1111.11")), (2, Decimal("222.22")))
    ]
    return customer, invoices


def _template_row(template: Any) -> TemplateRow:
    return TemplateRow(
        code=template.code,
        channel=template.channel.value,
        language=template.language,
        subject=template.subject,
        body=template.body,
        active=True,
        position=0,
    )


@pytest.mark.parametrize(("name", "shipped_template"), shipped("letter"))
def test_a_shipped_letter_has_one_closing_and_no_second_invoice_list(
    name: str, shipped_template: tuple[Any, Any]
) -> None:
    from recoup.messages.letter import render_letter

    template, config = shipped_template
    customer, invoices = _sample_book(template.language)
    letter = render_letter(
        _template_row(template),
        customer=customer,
        today=date(2026, 11, 20),
        invoice=invoices[0],
        invoices=invoices,
        balance=Money(Decimal("1333.33"), "EUR"),
        company=dict(config.settings.company),
    )
    text = re.sub(r"<[^>]+>", " ", letter.html)
    assert len(CLOSINGS.findall(text)) == 1, f"{name}: {CLOSINGS.findall(text)}"
    assert not CLOSINGS.search(letter.rendered.text), f"{name}: the layout signs, not the text"
    for amount in ("1,111.11", "1 111,11", "1.111,11", "222.22", "222,22"):
        # each invoice's amount due once, in the layout's table
        assert text.replace("\u202f", " ").replace("\xa0", " ").count(amount) <= 2  # amount, due
    assert not re.search(r"^\s*[-•]\s", letter.rendered.text, re.M), f"{name}: an invoice list"


@pytest.mark.parametrize(
    ("name", "shipped_template"),
    shipped("letter") + [item for item in shipped("email") if "/final_notice/" in item[0]],
)
def test_a_shipped_final_letter_states_deadline_fees_and_how_to_pay(
    name: str, shipped_template: tuple[Any, Any]
) -> None:
    """With the fees variables (SPEC §3) filled in, the letter names the deadline, the fees,
    the total due, the bank details and the payment link; without them it still renders."""
    from recoup.messages.render import build_variables, format_day, format_money, render_row

    template, config = shipped_template
    customer, invoices = _sample_book(template.language)
    company = dict(config.settings.company)
    variables = build_variables(
        customer=customer,
        today=date(2026, 11, 20),
        invoice=invoices[0],
        invoices=invoices,
        balance=Money(Decimal("1333.33"), "EUR"),
        company=company,
    )
    plain = render_row(_template_row(template), variables).text
    assert company["iban"] in plain
    fees = Money(Decimal("40.00"), "EUR")
    variables |= {
        "charges": [],
        "fees_total": fees,
        "total_due": Money(Decimal("1373.33"), "EUR"),
        "deadline": date(2026, 11, 28),
        "pay_url": "https://pay.example.com/I1",
    }
    text = render_row(_template_row(template), variables).text.replace("\n", " ")
    locale = variables["locale"]
    for expected in (
        format_day(date(2026, 11, 28), "long", locale=locale),
        format_money(fees, locale=locale),
        format_money(Money(Decimal("1373.33"), "EUR"), locale=locale),
        company["iban"],
        "https://pay.example.com/I1",
    ):
        assert expected in text, f"{name}: {expected!r} not in {text!r}"


@pytest.mark.parametrize(
    ("name", "shipped_template"), shipped("email") + shipped("letter") + shipped("sms")
)
@pytest.mark.parametrize("with_fees", [False, True])
def test_every_shipped_template_renders_with_and_without_the_fee_variables(
    name: str, shipped_template: tuple[Any, Any], with_fees: bool
) -> None:
    from recoup.messages.render import build_variables, render_row

    template, config = shipped_template
    customer, invoices = _sample_book(template.language)
    variables = build_variables(
        customer=customer,
        today=date(2026, 11, 20),
        invoice=invoices[0],
        invoices=invoices,
        balance=Money(Decimal("1333.33"), "EUR"),
        company=dict(config.settings.company),
    )
    if with_fees:
        variables |= {
            "charges": [],
            "fees_total": Money(Decimal("0"), "EUR"),
            "total_due": Money(Decimal("1333.33"), "EUR"),
            "deadline": None,
            "pay_url": None,
        }
    rendered = render_row(_template_row(template), variables)
    assert "{{" not in rendered.text and "{%" not in rendered.text
    assert "None" not in rendered.text, f"{name}: {rendered.text!r}"
    if with_fees:  # no fees, no deadline, no link: no sentence about them
        assert "0.00" not in rendered.text and "0,00" not in rendered.text


def _charge(
    session: Session, plan: Plan, code: str, kind: str, amount: str, status: str = "open"
) -> None:
    action = make_action(session, code, kind, service="LATE_FEE")
    instance = make_instance(session, action, plan=plan, level="final", status="done")
    session.add(
        Charge(
            action_instance_id=instance.id,
            customer_id=plan.customer_id,
            plan_id=plan.id,
            amount=Decimal(amount),
            currency="EUR",
            service="LATE_FEE",
            kind=kind,
            created_on=date(2024, 2, 1),
            status=status,
        )
    )


def test_the_letter_shows_open_fees_a_row_each_in_its_total(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    book = letter_book(session_factory)
    with session_factory() as session, session.begin():
        plan = session.get(Plan, book.plan_id)
        assert plan is not None
        _charge(session, plan, "fee_40", "late_fee_fixed", "40.00")
        _charge(session, plan, "interest", "interest", "4.10")
        _charge(session, plan, "fee_old", "late_fee_fixed", "99.00", status="waived")
        level = next(lvl for lvl in plan.policy.levels if lvl.code == "final")
        level.deadline_days = 8
        settings = session.get(SettingsRow, 1)
        assert settings is not None
        settings.company = {**COMPANY, "pay_url": "https://pay.example/{{ customer.id }}"}
        template = session.scalar(
            select(TemplateRow).where(
                TemplateRow.code == "final_letter", TemplateRow.language == "fr"
            )
        )
        assert template is not None
        template.body = (
            FR_BODY + "\n\nFrais : {{ fees_total|money }}. Total : {{ total_due|money }}, "
            "avant le {{ deadline|date('long') }}, sur {{ pay_url }}."
        )
    stats = execute(session_factory, make_env(db_url, tmp_path))
    assert stats.done == 1, stats
    [document] = documents(session_factory)
    text = pdf_text(document.path)

    def money(amount: str) -> str:
        return normalise(format_currency(Decimal(amount), "EUR", locale="fr"))

    assert f"Frais de retard du 1 févr. 2024 {money('40.00')}" in text, text
    assert f"Intérêts de retard du 1 févr. 2024 {money('4.10')}" in text
    assert money("99.00") not in text  # waived: not owed
    assert f"Total dû {money('1708.85')}" in text  # 1664.75 of invoices + 44.10 of fees
    assert f"Frais : {money('44.10')}. Total : {money('1708.85')}" in text
    assert "avant le 9 mars 2024, sur https://pay.example/C1." in text
    with session_factory() as session:
        instance = session.get(ActionInstance, book.instance_id)
        assert instance is not None and instance.result is not None
        assert instance.result["total"] == "1708.85"
