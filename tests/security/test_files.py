"""Files users hand Recoup and files Recoup writes (issue 8, items 1 and 10).

Invoice PDFs come from RECOUP_INVOICE_DIR only: each hostile `pdf_path` below once mailed a
local file (the password file, the process environment, the database) as application/pdf.
Emails in the outbox and letters are written through a fresh temporary file, owner-only, and
a full disk leaves nothing behind. Real SMTP server, real files; both databases.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import resource
import signal
import stat
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from recoup.core.env import EnvConfig, load_env
from recoup.core.errors import RecoupError
from recoup.documents.service import write_file
from recoup.messages.email import outbox_name
from recoup.models import ActionInstance, ActionRow, Plan, PlanInvoice
from tests.actions.test_actions_email import PDF_BYTES, SmtpServer, smtp_server  # noqa: F401
from tests.documents.test_letters import letter_book
from tests.factories import (
    execute,
    make_acme_customer,
    make_acme_invoice,
    make_acme_policy,
    make_action,
    make_env,
    make_instance,
    make_template,
)

SQLITE_HEADER = b"SQLite format 3"


def _db_file(db_url: str, tmp_path: Path) -> Path:
    """The SQLite database file; on PostgreSQL a copy of one, where SQLite would keep it."""
    if db_url.startswith("sqlite"):
        return Path(db_url.removeprefix("sqlite:///"))
    path = tmp_path / "recoup.db"
    path.write_bytes(SQLITE_HEADER + b"\0" * 100)
    return path


def _statement_email(
    factory: sessionmaker[Session], pdf_paths: dict[str, str], *, attach_invoice: bool = True
) -> int:
    """A customer-mode plan over one invoice per `pdf_paths` item, with a pending send_email
    (policy attach_invoice) listing them all."""
    with factory() as s, s.begin():
        customer = make_acme_customer(s, language="en")
        invoices = [
            make_acme_invoice(s, customer, invoice_id, amount=Decimal("10.00"), pdf_path=pdf_path)
            for invoice_id, pdf_path in pdf_paths.items()
        ]
        make_template(s, "statement", subject="Statement", body="{{ balance|money }}")
        action = make_action(s, "mail", "send_email", template="statement")
        policy = make_acme_policy(
            s, levels=[("first", 5, ["mail"]), ("final", 90, [])], attach_invoice=attach_invoice
        )
        plan = Plan(
            customer_id=customer.id,
            invoice_id=None,
            currency="EUR",
            mode="customer",
            policy_id=policy.id,
            level="first",
            balance=Decimal("10.00") * len(invoices),
            opened_on=date(2024, 1, 6),
            anchor_date=date(2024, 1, 1),
            open_key="cust:C1:EUR",
        )
        s.add(plan)
        s.flush()
        for invoice in invoices:
            s.add(PlanInvoice(plan_id=plan.id, invoice_id=invoice.id, joined_on=plan.opened_on))
        s.flush()
        return make_instance(s, action, plan=plan, level="first").id


def _instance(factory: sessionmaker[Session], instance_id: int) -> ActionInstance:
    with factory() as s:
        instance = s.get(ActionInstance, instance_id)
        assert instance is not None
        return instance


# --- 8.1: invoice PDFs ---------------------------------------------------------------------


def test_no_local_file_is_mailed_as_an_invoice_pdf(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    env = make_env(db_url, tmp_path, smtp_url=smtp_server.url)
    folder = env.data_dir / "invoices"  # the default RECOUP_INVOICE_DIR
    (folder / "2024").mkdir(parents=True)
    (folder / "2024" / "good.pdf").write_bytes(PDF_BYTES)
    database = _db_file(db_url, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "looks-like.pdf").write_bytes(PDF_BYTES + b"secret outside the folder")
    # planted inside the folder: links out (to a real PDF too: the link itself is refused),
    # a copy of the database, a folder link, a FIFO
    (folder / "passwd.pdf").symlink_to("/etc/passwd")
    (folder / "outside.pdf").symlink_to(outside / "looks-like.pdf")
    (folder / "db.pdf").symlink_to(database)
    (folder / "etc").symlink_to("/etc")
    (folder / "copy.pdf").write_bytes(database.read_bytes()[:1000])
    os.mkfifo(folder / "fifo.pdf")
    hostile = {
        "ETC": "/etc/passwd",
        "SHADOW": "../../../../../../../../etc/shadow",
        "ENVIRON": "/proc/self/environ",
        "DB": str(database),
        "DBREL": os.path.relpath(database, folder),
        "LINK": "passwd.pdf",
        "LINKPDF": "outside.pdf",
        "LINKDB": "db.pdf",
        "DIRLINK": "etc/passwd",
        "COPY": "copy.pdf",
        "FIFO": "fifo.pdf",
        "ESCAPE": str(folder / ".." / ".." / "recoup.db"),
    }
    instance_id = _statement_email(session_factory, {"GOOD": "2024/good.pdf", **hostile})

    stats = execute(session_factory, env)

    assert (stats.done, stats.failed, stats.retried) == (1, 0, 0)
    [envelope] = smtp_server.collector.envelopes
    [msg] = smtp_server.collector.messages()
    assert [a.get_filename() for a in msg.iter_attachments()] == ["good.pdf"]
    raw = bytes(envelope.content)
    for leaked in (b"root:", SQLITE_HEADER, b"PATH=", b"secret outside"):
        assert leaked not in raw
    result = _instance(session_factory, instance_id).result
    assert result is not None and result["attachments"] == ["good.pdf"]
    refused = {r["invoice_id"]: r for r in result["refused_attachments"]}
    assert set(refused) == set(hostile)
    assert {r["pdf_path"] for r in refused.values()} == set(hostile.values())
    reasons = {key: r["reason"] for key, r in refused.items()}
    assert "outside the invoice folder" in reasons["ETC"]
    assert "'..'" in reasons["SHADOW"] and "'..'" in reasons["DBREL"]
    assert "symbolic link" in reasons["LINKPDF"] and "symbolic link" in reasons["DIRLINK"]
    assert "not a PDF" in reasons["COPY"]
    assert "regular file" in reasons["FIFO"]


def test_an_oversized_pdf_is_not_attached(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    smtp_server: SmtpServer,  # noqa: F811
) -> None:
    env = make_env(db_url, tmp_path, smtp_url=smtp_server.url)
    env = dataclasses.replace(env, invoice_max_bytes=1024)
    env.invoices_dir.mkdir(parents=True)
    (env.invoices_dir / "big.pdf").write_bytes(PDF_BYTES + b"\0" * 2048)
    (env.invoices_dir / "small.pdf").write_bytes(PDF_BYTES)
    instance_id = _statement_email(session_factory, {"BIG": "big.pdf", "SMALL": "small.pdf"})

    assert execute(session_factory, env).done == 1

    [msg] = smtp_server.collector.messages()
    assert [a.get_filename() for a in msg.iter_attachments()] == ["small.pdf"]
    result = _instance(session_factory, instance_id).result
    assert result is not None
    [refused] = result["refused_attachments"]
    assert refused["invoice_id"] == "BIG" and "larger than 1024 bytes" in refused["reason"]


def test_invoice_folder_and_size_cap_are_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RECOUP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("RECOUP_INVOICE_DIR", raising=False)
    monkeypatch.delenv("RECOUP_INVOICE_MAX_MB", raising=False)
    env = load_env()
    assert env.invoices_dir == tmp_path / "data" / "invoices"
    assert env.invoice_max_bytes == 10 * 1024 * 1024
    monkeypatch.setenv("RECOUP_INVOICE_DIR", str(tmp_path / "pdfs"))
    monkeypatch.setenv("RECOUP_INVOICE_MAX_MB", "2")
    env = load_env()
    assert env.invoices_dir == tmp_path / "pdfs" and env.invoice_max_bytes == 2 * 1024 * 1024
    monkeypatch.setenv("RECOUP_INVOICE_MAX_MB", "lots")
    with pytest.raises(RecoupError, match="RECOUP_INVOICE_MAX_MB"):
        load_env()


# --- 8.10: files Recoup writes -------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _outbox_email(factory: sessionmaker[Session]) -> int:
    return _statement_email(factory, {"I1": ""}, attach_invoice=False)


def _outbox_path(env: EnvConfig, factory: sessionmaker[Session], instance_id: int) -> Path:
    key = _instance(factory, instance_id).key
    return env.outbox_dir / outbox_name(instance_id, key)


def test_outbox_follows_no_planted_symlink(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    env = make_env(db_url, tmp_path)
    instance_id = _outbox_email(session_factory)
    path = _outbox_path(env, session_factory, instance_id)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    env.outbox_dir.mkdir(parents=True)
    # at the target and at the temporary name an earlier version always used
    path.symlink_to(victim)
    path.with_suffix(".eml.tmp").symlink_to(victim)

    assert execute(session_factory, env).done == 1

    assert victim.read_text() == "precious\n"
    assert not path.is_symlink() and b"Subject: Statement" in path.read_bytes()


def test_outbox_and_letters_are_owner_only(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    env = make_env(db_url, tmp_path)
    book = letter_book(session_factory, email_action=True)  # a letter, and an email with it
    with session_factory() as s, s.begin():
        action = s.scalar(select(ActionRow).where(ActionRow.code == "email_final"))
        assert action is not None
        make_instance(s, action, plan=s.get(Plan, book.plan_id), level="final")
    assert execute(session_factory, env).done == 2

    [eml] = env.outbox_dir.glob("*.eml")
    [letter] = (env.documents_dir / str(book.plan_id)).glob("*.pdf")
    assert _mode(eml) == 0o600 and _mode(letter) == 0o600
    for folder in (env.data_dir, env.outbox_dir, env.documents_dir, letter.parent):
        assert _mode(folder) == 0o700, folder


def test_file_modes_are_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECOUP_FILE_MODE", "640")
    monkeypatch.setenv("RECOUP_DIR_MODE", "0750")
    env = load_env()
    assert (env.file_mode, env.dir_mode) == (0o640, 0o750)
    write_file(
        tmp_path / "data" / "a" / "f.pdf",
        PDF_BYTES,
        below=tmp_path / "data",
        file_mode=env.file_mode,
        dir_mode=env.dir_mode,
    )
    assert _mode(tmp_path / "data" / "a" / "f.pdf") == 0o640
    assert _mode(tmp_path / "data" / "a") == 0o750
    for wrong in ("rw-------", "400", "1777"):
        monkeypatch.setenv("RECOUP_FILE_MODE", wrong)
        with pytest.raises(RecoupError, match="RECOUP_FILE_MODE must be an octal"):
            load_env()


def test_letter_refuses_a_symlinked_folder(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    env = make_env(db_url, tmp_path)
    book = letter_book(session_factory)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env.documents_dir.mkdir(parents=True)
    (env.documents_dir / str(book.plan_id)).symlink_to(elsewhere)
    # and the temporary name an earlier version used, in case the folder were followed
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    name = f"{book.instance_id}-final-letter_final.pdf"
    (elsewhere / f".{name}.{os.getpid()}.tmp").symlink_to(victim)

    stats = execute(session_factory, env)

    assert stats.done == 0
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in elsewhere.iterdir()) == [f".{name}.{os.getpid()}.tmp"]
    instance = _instance(session_factory, book.instance_id)
    assert instance.error is not None and "symbolic link" in instance.error


@contextlib.contextmanager
def _full_disk() -> Iterator[None]:
    """Fault injection: every file write beyond 0 bytes fails (EFBIG) as on a full disk."""
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)


def _while_disk_full(function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _full_disk():
            return function(*args, **kwargs)

    return wrapper


def test_full_disk_leaves_no_temporary_file_in_the_outbox(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import recoup.actions.executors as executors

    env = make_env(db_url, tmp_path)
    instance_id = _outbox_email(session_factory)
    # only the outbox write runs against the full disk, not the database's own writes
    monkeypatch.setattr(executors, "write_outbox", _while_disk_full(executors.write_outbox))

    stats = execute(session_factory, env)

    assert stats.done == 0 and stats.retried == 1
    assert list(env.outbox_dir.iterdir()) == []
    instance = _instance(session_factory, instance_id)
    assert instance.status == "pending" and instance.error is not None


def test_full_disk_leaves_no_temporary_letter(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import recoup.actions.letter as letter

    env = make_env(db_url, tmp_path)
    book = letter_book(session_factory)
    monkeypatch.setattr(letter, "write_file", _while_disk_full(letter.write_file))

    stats = execute(session_factory, env)

    assert stats.done == 0 and stats.retried == 1
    assert list((env.documents_dir / str(book.plan_id)).iterdir()) == []
