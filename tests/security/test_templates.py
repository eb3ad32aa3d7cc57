"""Templates as an attacker would write them (issue 8.2, 8.4 and what held): letters that embed
local files or call internal servers, renders that exhaust memory or time, and sandbox escapes.
Real PDFs are read back with pypdf; a real HTTP server must receive no request."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from pypdf import PdfReader
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from recoup.cli.main import app
from recoup.core.env import load_env
from recoup.messages.assets import external_references
from recoup.messages.render import TemplateError, TemplateLimitExceeded, render_string
from recoup.models import ActionInstance, Document, LogEntry, Task, TemplateRow
from tests.documents.test_letters import letter_book
from tests.factories import (
    execute,
    make_acme_customer,
    make_acme_invoice,
    make_acme_policy,
    make_action,
    make_instance,
    make_plan,
    make_template,
)
from tests.http_recorder import Recorder, http_recorder

runner = CliRunner()
SECRET = "top-secret-3f9a1c"


def hostile_letter(url: str, secret: Path) -> str:
    """Every way a letter's HTML makes WeasyPrint load something."""
    return f"""<p>Dear {{{{ customer.name }}}},</p>
<link rel="attachment" href="file:///etc/passwd" title="passwd">
<link rel="attachment" href="{secret.as_uri()}">
<a rel="attachment" href="file:///etc/passwd">invoice</a>
<link rel="stylesheet" href="{url}/stylesheet.css">
<style>@import "{url}/import.css"; p {{ background: url("{url}/background.png") }}</style>
<div style="background-image: url({url}/inline.png)">x</div>
<img src="{url}/pixel.png"><img src="file:///etc/passwd"><img src="{secret.as_uri()}">
<img src="data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7">
<svg width="10" height="10"><image href="{url}/svg-image.png" width="10" height="10"/></svg>
<img src="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='9' height='9'%3E%3Cimage href='{url}/nested.png' width='9' height='9'/%3E%3C/svg%3E">
<style>@font-face {{ font-family: Evil; src: url({url}/font.woff) }} p {{ font-family: Evil }}</style>
<p>Please pay {{{{ balance|money }}}}.</p>"""


def assert_clean_pdf(content: bytes, secret_text: str = SECRET) -> None:
    reader = PdfReader(__import__("io").BytesIO(content))
    assert reader.attachments == {}
    assert b"/EmbeddedFile" not in content and b"/FileAttachment" not in content
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    assert "root:" not in text and secret_text not in text
    assert "Please pay" in text  # the letter itself is there


@pytest.fixture
def recorder() -> Recorder:
    with http_recorder() as rec:
        yield rec


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(f"{SECRET}\n", encoding="utf-8")
    return path


def _make_hostile(factory: sessionmaker[Session], body: str) -> None:
    with factory() as session, session.begin():
        session.execute(
            update(TemplateRow).where(TemplateRow.code == "final_letter").values(body=body)
        )


def test_a_letter_run_loads_no_local_file_and_calls_no_server(
    session_factory: sessionmaker[Session],
    env: dict[str, str],
    recorder: Recorder,
    secret: Path,
) -> None:
    letter_book(session_factory)
    _make_hostile(session_factory, hostile_letter(recorder.url, secret))
    stats = execute(session_factory, load_env())
    assert stats.done == 1
    with session_factory() as session:
        document = session.scalars(select(Document)).one()
    assert_clean_pdf(Path(document.path).read_bytes())
    assert recorder.requests == []


def test_a_letter_preview_loads_no_local_file_and_calls_no_server(
    session_factory: sessionmaker[Session],
    env: dict[str, str],
    recorder: Recorder,
    secret: Path,
    tmp_path: Path,
) -> None:
    letter_book(session_factory)
    _make_hostile(session_factory, hostile_letter(recorder.url, secret))
    out = tmp_path / "preview.pdf"
    result = runner.invoke(
        app, ["template", "preview", "final_letter", "--invoice", "I2", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert_clean_pdf(out.read_bytes())
    assert recorder.requests == []


def test_config_validate_refuses_a_letter_that_references_anything_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOUP_DATABASE_URL", f"sqlite:///{tmp_path / 'none' / 'x.db'}")
    body = hostile_letter("http://127.0.0.1:9", tmp_path / "secret.txt")
    document = {
        "templates": [
            {"code": "ok", "channel": "letter", "language": "en", "body": "<p>Hi</p>"},
            {"code": "bad", "channel": "letter", "language": "en", "body": body},
        ]
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    result = runner.invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 1
    lines = [line.strip() for line in result.output.splitlines() if "templates[" in line]
    assert all(line.startswith("templates[1].body: ") for line in lines), lines
    for needle in (
        'rel="attachment"',
        "pixel.png",
        "stylesheet.css",
        "import.css",
        "background.png",
        "inline.png",
        "file:///etc/passwd",
        "svg-image.png",
        "font.woff",
    ):
        assert any(needle in line for line in lines), needle
    assert not any("data:image" in line for line in lines)


@pytest.mark.parametrize(
    ("markup", "refused"),
    [
        ('<img src="logo.png">', False),
        ('<img src="data:image/png;base64,AAAA">', False),
        ('<a href="https://pay.example.com/1">pay</a>', False),
        ('<img src="../../etc/passwd">', True),
        ('<img src="/etc/passwd">', True),
        ('<img src="//evil.example/x">', True),
        ('<img src="HTTP://evil.example/x">', True),
        ('<p style="background: u\\72l(http://evil.example)">x</p>', True),
        ('<svg><image href="file:///etc/passwd"/></svg>', True),
        ('<img srcset="a.png 1x, http://evil.example/b.png 2x">', True),
        ('<object data="file:///etc/passwd"></object>', True),
    ],
)
def test_letter_references(markup: str, refused: bool) -> None:
    assert bool(external_references(markup)) is refused


# --- 8.4: bounded rendering -------------------------------------------------------------


BOMBS = [
    "{{ 'a' * 10**9 }}",
    "{{ 'a' * 400000 * 400000 }}",
    "{{ ['a'] * 10**9 }}",
    "{{ '%999999999s'|format('x') }}",
    "{{ '%999999999s' % 'x' }}",
    "{{ '%*s' % (999999999, 'x') }}",
    "{{ '{:999999999}'.format('x') }}",
    "{{ '{:>{w}}'.format('x', w=999999999) }}",
    "{{ 10 ** (10 ** 9) }}",
    "{{ 'x'.ljust(10**9) }}",
    "{{ 'x'|center(10**9) }}",
    "{{ ('a' * 1000)|replace('a', 'b' * 1000) }}",
    "{{ lipsum(100000) }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
    "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s|length }}",
    "{% macro m() %}{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}{% endmacro %}"
    "{% for i in range(1000) %}{% set x = m() %}{% endfor %}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
]


@pytest.mark.parametrize("source", BOMBS)
def test_a_template_bomb_is_stopped_quickly_with_a_clear_error(source: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateLimitExceeded, match=r"template t: .*rendering limit"):
        render_string(source, {}, name="t")
    assert time.monotonic() - started < 5


def test_ordinary_templates_render_within_the_limits() -> None:
    source = (
        "{% for i in range(2000) %}{{ '%-10s|%8.2f' % (i, i / 3) }} {{ '{:>6}'.format(i) }}"
        "{{ ('a' ~ i)|upper }}{% endfor %}{{ lipsum(2) }}{{ 'x' * 1000 }}{{ 2 ** 64 }}"
    )
    assert len(render_string(source, {}, name="t")) > 50_000
    big = "{{ '{:,}'.format(12345678) }} {{ '%d'|format(10**7) }} {{ dict(a=10**7).a }}"
    assert render_string(big, {}, name="t") == "12,345,678 10000000 10000000"


def test_a_template_bomb_in_a_run_fails_once_permanently_and_the_others_are_sent(
    session_factory: sessionmaker[Session], env: dict[str, str]
) -> None:
    with session_factory() as session, session.begin():
        bomb = make_action(session, "sms_bomb", "send_email", template="bomb")
        good = make_action(session, "email_ok", "send_email", template="notice_1")
        make_template(session, "bomb", body="{{ 'a' * 10**9 }}")
        make_template(session, "notice_1")
        policy = make_acme_policy(session, levels=[("first", 5, ["sms_bomb", "email_ok"])])
        customer = make_acme_customer(session)
        plan = make_plan(session, make_acme_invoice(session, customer), policy, level="first")
        bomb_id = make_instance(session, bomb, plan=plan, level="first").id
        good_id = make_instance(session, good, plan=plan, level="first").id
    execute(session_factory, load_env())
    with session_factory() as session:
        failed = session.get(ActionInstance, bomb_id)
        sent = session.get(ActionInstance, good_id)
        assert failed is not None and sent is not None
        assert (failed.status, failed.attempts) == ("failed", 1)
        assert "rendering limit" in (failed.error or "")
        assert sent.status == "done"
        assert session.scalars(select(Task)).all()  # the collector is told
        assert session.scalars(select(LogEntry).where(LogEntry.event == "action_failed")).one()


def test_config_validate_refuses_template_bombs_at_their_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOUP_DATABASE_URL", f"sqlite:///{tmp_path / 'none' / 'x.db'}")
    document = {
        "templates": [
            {"code": f"t{i}", "channel": "sms", "language": "en", "body": source}
            for i, source in enumerate(BOMBS)
        ]
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    started = time.monotonic()
    result = runner.invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 1
    for index in range(len(BOMBS)):
        assert f"templates[{index}].body: " in result.output
    assert result.output.count("rendering limit") == len(BOMBS)
    assert time.monotonic() - started < 30


# --- what held, and must keep holding -------------------------------------------------------

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ ''|attr('__class__')|attr('__mro__') }}",
    "{{ customer|attr('__class__') }}",
    "{{ '{0.__class__.__mro__}'.format('') }}",
    "{{ '{0.__globals__}'.format(cycler.reset) }}",
    "{% include '/etc/passwd' %}",
    "{% extends '/etc/passwd' %}",
    "{% import '/etc/passwd' as p %}",
    "{{ customer.clear() }}",
    "{{ invoices.append(1) }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escapes_are_refused(source: str) -> None:
    variables = {"customer": {"name": "x"}, "invoices": []}
    for autoescape in (False, True):
        with pytest.raises(TemplateError):
            output = render_string(source, variables, name="t", autoescape=autoescape)
            assert "root:" not in output  # never reached: the render raises
