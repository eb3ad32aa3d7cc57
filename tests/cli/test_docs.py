"""The documentation users have (docs/): it defines every rule that messages cite, lists every
command of the CLI and every key of the policy file and every template variable, and the README
links it instead of a SPEC users do not have. Everything is read from the code at test time, so
a new command, key or rule citation cannot escape the docs."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import typer

from recoup.cli.main import app
from recoup.policies import document as config_file

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = ["rules.md", "policy-file.md", "templates.md", "cli.md", "webhooks.md"]
RULE_RE = re.compile(r"\bR(\d{1,2})\b")


def _text(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_rules_page_defines_r1_to_r15_in_order() -> None:
    headings = re.findall(r"^## R(\d+)\. \S", _text("rules.md"), re.M)
    assert [int(n) for n in headings] == list(range(1, 16))


def _messages() -> Iterator[tuple[str, int, str]]:
    """Every string literal of recoup/ that is not a docstring: what users may read."""
    for path in sorted((ROOT / "recoup").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                body = node.body
                if (
                    body
                    and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                ):
                    docstrings.add(id(body[0].value))
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                parts = [v.value for v in node.values if isinstance(v, ast.Constant)]
                yield str(path.relative_to(ROOT)), node.lineno, "".join(map(str, parts))
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
            ):
                yield str(path.relative_to(ROOT)), node.lineno, node.value


def _rule_citations() -> list[tuple[str, int, str]]:
    return [(f, n, text) for f, n, text in _messages() if RULE_RE.search(text)]


def test_every_rule_a_message_cites_is_in_the_rules_page() -> None:
    defined = {int(n) for n in re.findall(r"^## R(\d+)\.", _text("rules.md"), re.M)}
    citations = _rule_citations()
    assert citations, "no message cites a rule: the test would prove nothing"
    for where, line, text in citations:
        for number in RULE_RE.findall(text):
            assert int(number) in defined, f"{where}:{line}: R{number} is not in docs/rules.md"


def test_a_message_citing_a_rule_says_where_users_read_it() -> None:
    # a literal split in two ("… (rule R11" "in docs/rules.md)") is one constant for Python
    for where, line, text in _rule_citations():
        assert "docs/rules.md" in text, (
            f"{where}:{line}: {text!r} cites a rule users cannot look up"
        )


def test_no_message_cites_the_spec() -> None:
    for where, line, text in _messages():
        assert "SPEC" not in text, f"{where}:{line}: {text!r}"


def _commands() -> list[str]:
    def walk(command: Any, path: list[str]) -> Iterator[str]:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(path)

    return sorted(walk(typer.main.get_command(app), []))


def test_every_cli_command_is_in_the_cli_reference() -> None:
    text = _text("cli.md")
    commands = _commands()
    assert "run" in commands and "config apply" in commands
    missing = [
        c for c in commands if not re.search(rf"^### `recoup {re.escape(c)}[ `]", text, re.M)
    ]
    assert not missing, f"commands without a section in docs/cli.md: {missing}"


def test_every_key_of_the_policy_file_is_documented() -> None:
    text = _text("policy-file.md")
    keys = {
        *config_file.TOP_LEVEL_KEYS,
        *config_file.SETTINGS_KEYS,
        *config_file.TEMPLATE_KEYS,
        *config_file.ACTION_COMMON_KEYS,
        *config_file.LEVEL_KEYS,
        *config_file.POLICY_KEYS,
        *config_file.RULE_KEYS,
        *config_file.WEBHOOK_KEYS,
        *config_file.COMBINATORS,
        *(key for fields in config_file.ACTION_FIELDS.values() for key in fields),
        *(action_type.value for action_type in config_file.ACTION_FIELDS),
    }
    missing = sorted(key for key in keys if f"`{key}`" not in text)
    assert not missing, f"keys not in docs/policy-file.md: {missing}"


def test_every_template_variable_is_documented() -> None:
    from recoup.messages.render import build_variables
    from recoup.models import Customer, Invoice, LevelRow, Plan

    today = date(2026, 12, 1)
    customer = Customer(id="C1", name="Acme", attributes={})
    invoice = Invoice(
        id="I1",
        customer_id="C1",
        number="N1",
        type="commercial",
        issue_date=today,
        due_date=today,
        currency="EUR",
        amount=1,
        amount_due=1,
        status="open",
        disputed=False,
    )
    plan = Plan(
        id=1,
        customer_id="C1",
        invoice_id="I1",
        currency="EUR",
        mode="invoice",
        status="active",
        level="l",
        balance=1,
        opened_on=today,
        anchor_date=today,
        paused_days=0,
    )
    level = LevelRow(code="l", days=1, reminder=False, end=False)
    variables = build_variables(
        customer=customer, today=today, invoice=invoice, plan=plan, level=level
    )
    text = _text("templates.md")
    names = {name for name in variables if name != "locale"}
    names |= {"charges", "fees_total", "total_due", "deadline", "pay_url"}  # SPEC §3
    for group in ("customer", "invoice", "plan", "level"):
        names |= set(variables[group])
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert not missing, f"template variables not in docs/templates.md: {missing}"
    for field in ("address", "iban", "bic", "vat", "signatory", "city", "pay_url"):
        assert f"company.{field}" in text


def test_the_readme_links_the_docs_and_cites_no_spec() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in PAGES:
        assert f"](docs/{page}" in readme, f"README does not link docs/{page}"
    assert "SPEC" not in readme


@pytest.mark.parametrize("page", PAGES)
def test_links_between_pages_lead_somewhere(page: str) -> None:
    text = _text(page)
    for target, anchor in re.findall(r"\]\(([\w./-]+\.md)(?:#([\w-]+))?\)", text):
        linked = (DOCS / target).resolve()
        assert linked.is_file(), f"{page}: link to missing {target}"
        if anchor:
            slugs = {
                re.sub(r"[^\w\- ]", "", heading.lower()).strip().replace(" ", "-")
                for heading in re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.M)
            }
            assert anchor in slugs, f"{page}: no heading #{anchor} in {target}"
