"""Issue 8.6: Recoup never sends an SMTP password over a cleartext connection unless the URL
says `insecure=true`, and TLS means a verified certificate. Against a real SMTP server
(aiosmtpd) that records every AUTH it is sent."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy.orm import Session, sessionmaker

from recoup.core.errors import RecoupError
from recoup.messages.email import parse_smtp_url
from tests.actions.test_actions_email import Collector, _free_port, _instance, _setup
from tests.factories import execute, make_env

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@dataclass
class AuthServer:
    port: int
    collector: Collector
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)


def _start(tls: ssl.SSLContext | None = None) -> tuple[Controller, AuthServer]:
    server = AuthServer(port=_free_port(), collector=Collector())

    def authenticator(smtp: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
        server.logins.append((auth.login, auth.password))
        return AuthResult(success=(auth.login, auth.password) == (b"dunning", b"pw"))

    options: dict[str, Any] = {"tls_context": tls, "require_starttls": True} if tls else {}
    controller = Controller(
        server.collector,
        hostname="127.0.0.1",
        port=server.port,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=tls is not None,
        **options,
    )
    controller.start()
    return controller, server


@pytest.fixture
def plain_server() -> Iterator[AuthServer]:
    controller, server = _start()
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made for the test."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[AuthServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    controller, server = _start(context)
    try:
        yield server
    finally:
        controller.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_password_over_cleartext_is_refused_and_never_sent(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, plain_server: AuthServer
) -> None:
    instance_id = _setup(session_factory)
    url = f"smtp://dunning:pw@127.0.0.1:{plain_server.port}"
    stats = execute(session_factory, make_env(db_url, tmp_path, smtp_url=url))
    assert stats.failed == 1  # a setting to fix: at once, with a collector task
    assert plain_server.logins == []  # no AUTH was sent
    assert plain_server.collector.envelopes == []
    error = _instance(session_factory, instance_id).error or ""
    assert "no TLS" in error and "?starttls=true" in error and "?insecure=true" in error
    assert "pw" not in error.replace("password", "")


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_insecure_true_allows_the_cleartext_login(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, plain_server: AuthServer
) -> None:
    _setup(session_factory)
    url = f"smtp://dunning:pw@127.0.0.1:{plain_server.port}?insecure=true"
    stats = execute(session_factory, make_env(db_url, tmp_path, smtp_url=url))
    assert stats.done == 1
    assert plain_server.logins == [(b"dunning", b"pw")]
    assert len(plain_server.collector.envelopes) == 1


@pytest.mark.parametrize(
    ("url", "secure"),
    [
        ("smtp://u:p@h", False),
        ("smtp://u:p@h?insecure=false", False),
        ("smtp://u:p@h?starttls=true", True),
        ("smtps://u:p@h", True),
        ("smtp://u:p@h?insecure=true", True),
        ("smtp://h", True),  # no login: nothing to protect
    ],
)
def test_which_urls_may_log_in(url: str, secure: bool) -> None:
    if secure:
        parse_smtp_url(url)
    else:
        with pytest.raises(RecoupError, match="insecure=true"):
            parse_smtp_url(url)


@needs_openssl
def test_starttls_with_a_trusted_certificate_logs_in(
    session_factory: sessionmaker[Session],
    db_url: str,
    tmp_path: Path,
    tls_server: AuthServer,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # the client trusts this one
    _setup(session_factory)
    url = f"smtp://dunning:pw@127.0.0.1:{tls_server.port}?starttls=true"
    stats = execute(session_factory, make_env(db_url, tmp_path, smtp_url=url))
    assert stats.done == 1
    assert tls_server.logins == [(b"dunning", b"pw")]


@needs_openssl
def test_starttls_to_an_untrusted_certificate_sends_no_password(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, tls_server: AuthServer
) -> None:
    instance_id = _setup(session_factory)
    url = f"smtp://dunning:pw@127.0.0.1:{tls_server.port}?starttls=true"
    stats = execute(session_factory, make_env(db_url, tmp_path, smtp_url=url))
    assert stats.done == 0
    assert tls_server.logins == []
    assert tls_server.collector.envelopes == []
    assert "CERTIFICATE_VERIFY_FAILED" in (_instance(session_factory, instance_id).error or "")


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_starttls_asked_of_a_server_without_it_never_falls_back_to_cleartext(
    session_factory: sessionmaker[Session], db_url: str, tmp_path: Path, plain_server: AuthServer
) -> None:
    _setup(session_factory)
    url = f"smtp://dunning:pw@127.0.0.1:{plain_server.port}?starttls=true"
    stats = execute(session_factory, make_env(db_url, tmp_path, smtp_url=url))
    assert stats.done == 0
    assert plain_server.logins == []
