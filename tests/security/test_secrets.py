"""Issue 8.5: no secret leaves through a message, the log, a result, a task or a delivery.

Each test plants a password or a token where an operator would (RECOUP_SMTP_URL,
RECOUP_DATABASE_URL, a webhook URL) and then looks for it everywhere Recoup writes: the
command's stdout and stderr and every column of the tables a person or a receiver reads."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from recoup.cli.main import app
from recoup.core.env import EnvConfig
from recoup.domain.redact import redact_text, redact_url, url_secrets
from recoup.models import ActionInstance, WebhookEndpoint
from recoup.policies.service import export_config
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
from tests.http_recorder import Recorder, http_recorder
from tests.webhooks.test_events import _apply, _document

PASSWORD = "Hunter2Secret"
WEBHOOK_SECRET = "whsec_NeverPrinted42"
DUMPED_TABLES = ("log_entries", "action_instances", "tasks", "webhook_deliveries")


@pytest.fixture
def server() -> Iterator[Recorder]:
    with http_recorder() as recorder:
        yield recorder


def _dump(engine: Engine) -> str:
    """Every row of the tables people and receivers read, as text."""
    lines = []
    with engine.connect() as connection:
        for table in DUMPED_TABLES:
            for row in connection.execute(text(f"SELECT * FROM {table}")):  # noqa: S608
                lines.append(f"{table}: {tuple(row)!r}")
    return "\n".join(lines)


def _assert_nowhere(secrets: list[str], *texts: str) -> None:
    for secret in secrets:
        for where in texts:
            assert secret not in where, f"{secret!r} leaked into:\n{where}"


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: its own process, its own stdout, stderr and logging."""
    return subprocess.run(
        [sys.executable, "-m", "recoup.cli.main", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _email_plan(factory: sessionmaker[Session]) -> int:
    with factory() as s, s.begin():
        make_template(s, "notice", subject="Overdue")
        action = make_action(s, "mail", "send_email", template="notice")
        policy = make_acme_policy(s, levels=[("first", 5, ["mail"]), ("final", 90, [])])
        invoice = make_acme_invoice(s, make_acme_customer(s))
        plan = make_plan(s, invoice, policy, level="first")
        return make_instance(s, action, plan=plan, level="first").id


# --- the pure helper -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://bob:pw@h.example/hook?token=abc&x=1",
            "https://bob:***@h.example/hook?token=***&x=1",
        ),
        ("https://TOKEN123@h.example/x", "https://***@h.example/x"),
        (
            "http://h/p?API-Key=k&apikey=k2&sig=s&page=2",
            "http://h/p?API-Key=***&apikey=***&sig=***&page=2",
        ),
        ("https://h/cb#access_token=zz&state=1", "https://h/cb#access_token=***&state=1"),
        ("smtp://u:p@ss@host:25", "smtp://u:***@host:25"),  # an unencoded "@" in a password
        ("https://h.example/plain?page=2", "https://h.example/plain?page=2"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_masks_known_secrets_in_every_form_and_every_url() -> None:
    message = (
        "login failed for s3cr:t (s3cr%3At) at smtp://u:s3cr%3At@mail; "
        "see https://h/x?client_secret=zz; pw is not pwd"
    )
    redacted = redact_text(message, url_secrets("smtp://u:s3cr%3At@mail") + ["pw"])
    assert redacted == (
        "login failed for *** (***) at smtp://u:***@mail; "
        "see https://h/x?client_secret=***; *** is not pwd"
    )


def test_env_secrets_cover_every_configured_credential() -> None:
    env = EnvConfig(
        database_url="postgresql+psycopg://bob:dbpw1@db/recoup",
        data_dir=Path("."),
        smtp_url="smtp://mailer:smtppw2@mail:587?starttls=true",
        user=None,
        sms_url="https://sms.example/send?api_key=smskey3",
        sms_token="smstoken4",
        billing_webhook_url="https://billing.example/retry?token=billtok5",
        webhook_secret="whsec6",
    )
    assert set(env.secrets) == {"dbpw1", "smtppw2", "smskey3", "smstoken4", "billtok5", "whsec6"}
    said = env.redact("dbpw1 smtppw2 smskey3 smstoken4 billtok5 whsec6")
    assert said == " ".join(["***"] * 6)


# --- a malformed or cleartext RECOUP_SMTP_URL ------------------------------------------------


@pytest.mark.parametrize(
    "smtp_url",
    [
        f"smtpx://dunning:{PASSWORD}@127.0.0.1:2525",  # wrong scheme: once echoed whole
        "smtp://dunning:Hunt/er2Secret@127.0.0.1:2525",  # unencoded "/": the port error
        f"smtp://dunning:{PASSWORD}@:2525",  # no host
        f"smtp://dunning:{PASSWORD}@127.0.0.1:2525",  # cleartext login: refused (8.6)
    ],
)
def test_a_bad_smtp_url_never_shows_its_password(
    session_factory: sessionmaker[Session],
    engine: Engine,
    env: dict[str, str],
    server: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    smtp_url: str,
) -> None:
    instance_id = _email_plan(session_factory)
    with session_factory() as s, s.begin():  # a receiver of the collector task's event
        s.add(WebhookEndpoint(url=server.url + "/hooks", events=["task_created"]))
    run_env = {**env, "RECOUP_SMTP_URL": smtp_url, "RECOUP_WEBHOOK_SECRET": WEBHOOK_SECRET}
    worker = _cli(run_env, "worker", "--once")
    assert worker.returncode == 0, worker.stderr
    outputs = [worker.stdout, worker.stderr]
    for name, value in run_env.items():
        monkeypatch.setenv(name, value)
    for args in (["log"], ["log", "--json"], ["tasks", "--json"], ["deliveries", "--json"]):
        shown = CliRunner().invoke(app, args)
        assert shown.exit_code == 0, shown.output
        outputs.append(shown.output)
    with session_factory() as s:
        instance = s.get(ActionInstance, instance_id)
        assert instance is not None
        assert instance.status == "failed"  # a bad setting fails at once, with a task
        assert "RECOUP_SMTP_URL" in (instance.error or "")
    assert len(server.requests) == 1  # the task_created event went out
    bodies = [request.body.decode() for request in server.requests]
    pieces = [PASSWORD, "Hunt", "er2Secret"]
    _assert_nowhere(pieces, *outputs, _dump(engine), *bodies)


# --- RECOUP_DATABASE_URL -------------------------------------------------------------------


@pytest.mark.parametrize(
    "database_url",
    [
        f"postgresql://bob:{PASSWORD}@127.0.0.1:1/nodb",  # unreachable
        f"postgresql://bob:{PASSWORD}@127.0.0.1:notaport/nodb",  # malformed: was a traceback
        f"mysql://bob:{PASSWORD}@127.0.0.1/nodb",  # a driver that is not installed
        f"nonsense-{PASSWORD}",  # not a URL at all
    ],
)
@pytest.mark.parametrize("command", [["plans"], ["run"], ["worker", "--once"]])
def test_a_database_error_is_one_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch, database_url: str, command: list[str]
) -> None:
    monkeypatch.setenv("RECOUP_DATABASE_URL", database_url)
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 1
    assert PASSWORD not in result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "database" in errors[0].lower()
    if "127.0.0.1:1/" in database_url:
        assert "cannot reach the database at postgresql+psycopg://bob:***@127.0.0.1:1/" in errors[0]


# --- webhook URLs with credentials -----------------------------------------------------------


def _hook_url(server: Recorder) -> str:
    return server.url.replace("http://", "http://hookuser:HookPw99@") + "/hook?token=TokAbc123&x=1"


HOOK_SECRETS = ["HookPw99", "TokAbc123"]


@pytest.mark.parametrize("answer", [200, 400])
def test_a_webhook_actions_credentials_stay_out_of_results_log_and_tasks(
    session_factory: sessionmaker[Session],
    engine: Engine,
    db_url: str,
    tmp_path: Path,
    server: Recorder,
    answer: int,
) -> None:
    url = _hook_url(server)
    server.answer(answer)
    with session_factory() as s, s.begin():
        action = make_action(s, "notify", "webhook", url=url)
        policy = make_acme_policy(s, levels=[("first", 5, ["notify"]), ("final", 20, [])])
        invoice = make_acme_invoice(s, make_acme_customer(s), amount=Decimal("250.00"))
        plan = make_plan(s, invoice, policy, level="first")
        instance_id = make_instance(s, action, plan=plan, level="first").id
    env = dataclasses.replace(make_env(db_url, tmp_path), webhook_secret=WEBHOOK_SECRET)
    stats = execute(session_factory, env)
    assert server.requests[0].path == "/hook?token=TokAbc123&x=1"  # the receiver got it all
    shown = redact_url(url)
    with session_factory() as s:
        instance = s.get(ActionInstance, instance_id)
        assert instance is not None
        if answer == 200:
            assert stats.done == 1
            assert instance.result is not None and instance.result["url"] == shown
        else:
            assert stats.failed == 1
            assert shown in (instance.error or "")
    _assert_nowhere(HOOK_SECRETS, _dump(engine))


def test_an_endpoints_credentials_stay_out_of_the_log_and_the_delivery_listing(
    session_factory: sessionmaker[Session],
    engine: Engine,
    env: dict[str, str],
    server: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = _hook_url(server)
    report = _apply(
        session_factory, _document([{"url": url, "events": ["task_created"]}], policies=False)
    )
    assert report.created[-1] == f"webhook {redact_url(url)}"
    with session_factory() as s:  # the configuration itself keeps the URL: export round-trips
        assert export_config(s)["webhooks"][0]["url"] == url
    _email_plan(session_factory)  # its email fails at once (no SMTP host): a collector task
    server.answer(500)  # whose event's first delivery fails
    run_env = {**env, "RECOUP_WEBHOOK_SECRET": WEBHOOK_SECRET, "RECOUP_SMTP_URL": "smtp://:1"}
    worker = _cli(run_env, "worker", "--once")
    assert worker.returncode == 0, worker.stderr
    for name, value in run_env.items():
        monkeypatch.setenv(name, value)
    listing, table, log = (
        CliRunner().invoke(app, args)
        for args in (["deliveries", "--json"], ["deliveries"], ["log", "--json"])
    )
    assert redact_url(url) in listing.stdout
    assert '"webhook_failed"' in log.stdout
    with engine.connect() as connection:
        logged = "\n".join(
            repr(tuple(row)) for row in connection.execute(text("SELECT * FROM log_entries"))
        )
    _assert_nowhere(
        HOOK_SECRETS,
        worker.stdout,
        worker.stderr,
        listing.output,
        table.output,
        log.output,
        logged,
    )


def test_config_validate_and_apply_print_webhook_urls_without_credentials(
    env: dict[str, str], tmp_path: Path
) -> None:
    def config_file(url: str) -> str:
        path = tmp_path / "policy.yaml"
        path.write_text(
            "webhooks:\n"
            f"  - {{url: '{url}', events: [plan_opened]}}\n"
            "actions:\n"
            f"  - {{code: notify, type: webhook, url: '{url}'}}\n"
        )
        return str(path)

    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    bad = config_file("ftp://hookuser:HookPw99@h.example/x?token=TokAbc123")
    refused = runner.invoke(app, ["config", "validate", bad])
    assert refused.exit_code == 1 and "must be an http(s) URL" in refused.output
    good = config_file("https://hookuser:HookPw99@h.example/x?token=TokAbc123")
    applied = runner.invoke(app, ["config", "apply", good])
    assert applied.exit_code == 0, applied.output
    assert "created: webhook https://hookuser:***@h.example/x?token=***" in applied.output
    log = runner.invoke(app, ["log", "--json"])
    _assert_nowhere(HOOK_SECRETS, refused.output, applied.output, log.output)
    exported = runner.invoke(app, ["config", "export", "-"])
    assert "https://hookuser:HookPw99@h.example/x?token=TokAbc123" in exported.output


def test_a_failed_runs_recorded_error_has_no_url_credentials(
    session_factory: sessionmaker[Session],
    engine: Engine,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from recoup.runs import service as engine_run

    with session_factory() as s, s.begin():
        make_acme_policy(s, levels=[("first", 5, []), ("final", 20, [])])

    def failing(*args: object, **kwargs: object) -> None:
        raise RuntimeError("POST https://hookuser:HookPw99@h.example/x?token=TokAbc123 failed")

    monkeypatch.setattr(engine_run, "_run", failing)
    with pytest.raises(RuntimeError):
        engine_run.run_dunning(
            session_factory, as_of=TODAY, env=make_env(db_url, tmp_path), execute=False
        )
    with engine.connect() as connection:
        [stats] = connection.execute(text("SELECT stats FROM runs")).scalars().all()
    assert "https://hookuser:***@h.example/x?token=*** failed" in str(stats)
    _assert_nowhere(HOOK_SECRETS, str(stats))


# --- URLs too malformed to redact: refused without being quoted -----------------------------

BROKEN_PASSWORD = "Zq/Xy9Secret"  # an unencoded "/": the rest of the URL reads as a bad port


def _fragments_absent(text_: str) -> None:
    assert "Xy9Secret" not in text_ and "'Zq'" not in text_, text_


def test_a_malformed_sms_url_fails_at_once_without_quoting_it(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    from tests.actions.test_sms import _setup as sms_setup

    instance_id, _ = sms_setup(session_factory)
    url = f"http://sms:{BROKEN_PASSWORD}@127.0.0.1:1/send"
    env = dataclasses.replace(make_env(db_url, tmp_path), sms_url=url)
    assert execute(session_factory, env).failed == 1  # a setting to fix, not retried
    with session_factory() as s:
        instance = s.get(ActionInstance, instance_id)
        assert instance is not None
        assert "RECOUP_SMS_URL is malformed" in (instance.error or "")
        _fragments_absent(instance.error or "")


def test_a_malformed_webhook_url_is_refused_by_validation_and_by_the_executor(
    session_factory: sessionmaker[Session], engine: Engine, db_url: str, tmp_path: Path
) -> None:
    from recoup.policies.service import check_config

    url = f"https://hook:{BROKEN_PASSWORD}@h.example/x"
    _config, issues = check_config(
        {
            "actions": [{"code": "notify", "type": "webhook", "url": url}],
            "webhooks": [{"url": url, "events": ["plan_opened"]}],
        }
    )
    said = [str(issue) for issue in issues if "url" in str(issue)]
    assert len(said) == 2 and all("malformed" in line for line in said)
    _fragments_absent("\n".join(said))
    with session_factory() as s, s.begin():  # stored before the check existed
        action = make_action(s, "notify", "webhook", url=url)
        policy = make_acme_policy(s, levels=[("first", 5, ["notify"]), ("final", 20, [])])
        plan = make_plan(s, make_acme_invoice(s, make_acme_customer(s)), policy, level="first")
        make_instance(s, action, plan=plan, level="first")
    env = dataclasses.replace(make_env(db_url, tmp_path), webhook_secret=WEBHOOK_SECRET)
    assert execute(session_factory, env).failed == 1
    _fragments_absent(_dump(engine))
