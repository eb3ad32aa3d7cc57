"""Building and delivering emails: SMTP when RECOUP_SMTP_URL is set, else an outbox folder
of `.eml` files (SPEC §5). Every message carries a Message-ID derived from the action
instance key, so a retried send is recognisably the same message (R13)."""

from __future__ import annotations

import atexit
import hashlib
import re
import smtplib
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from recoup.actions.errors import TransportError
from recoup.core.errors import RecoupError

SMTP_TIMEOUT = 30.0
DEFAULT_SENDER = "recoup@localhost"
_TRUE = {"1", "true", "yes", "on"}


class PermanentDeliveryError(RecoupError):
    """The server refused the message for good (5xx): retrying cannot help."""


def message_id_for(key: str) -> str:
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@recoup>"


def safe_filename(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "message"


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str = "application"
    subtype: str = "pdf"


def build_message(
    *,
    key: str,
    sender: str,
    sender_name: str | None,
    to: str,
    to_name: str | None,
    subject: str,
    text: str,
    html: str | None,
    attachments: Sequence[Attachment] = (),
    reply_to: str | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["Message-ID"] = message_id_for(key)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["From"] = formataddr((sender_name, sender)) if sender_name else sender
    msg["To"] = formataddr((to_name, to)) if to_name else to
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = subject
    msg["X-Recoup-Key"] = key
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for attachment in attachments:
        msg.add_attachment(
            attachment.content,
            maintype=attachment.maintype,
            subtype=attachment.subtype,
            filename=attachment.filename,
        )
    return msg


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    ssl: bool
    starttls: bool
    username: str | None
    password: str | None


def parse_smtp_url(url: str) -> SmtpTarget:
    """`smtp://user:pass@host:port?starttls=true` or `smtps://user:pass@host:port`."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise RecoupError(f"RECOUP_SMTP_URL must start with smtp:// or smtps://, not {url!r}")
    if not parts.hostname:
        raise RecoupError(f"RECOUP_SMTP_URL has no host: {url!r}")
    query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
    use_ssl = parts.scheme == "smtps"
    starttls = not use_ssl and (query.get("starttls") in _TRUE or query.get("tls") in _TRUE)
    port = parts.port or (465 if use_ssl else 587 if starttls else 25)
    return SmtpTarget(
        host=parts.hostname,
        port=port,
        ssl=use_ssl,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


_local = threading.local()


def _connect(target: SmtpTarget) -> smtplib.SMTP:
    # building a TLS context costs ~25 ms: only when the connection uses TLS
    context = ssl.create_default_context() if target.ssl or target.starttls else None
    client: smtplib.SMTP
    if target.ssl:
        client = smtplib.SMTP_SSL(target.host, target.port, timeout=SMTP_TIMEOUT, context=context)
    else:
        client = smtplib.SMTP(target.host, target.port, timeout=SMTP_TIMEOUT)
    try:
        client.ehlo()
        if target.starttls:
            client.starttls(context=context)
            client.ehlo()
        if target.username:
            client.login(target.username, target.password or "")
    except BaseException:
        client.close()
        raise
    return client


def _connection(url: str, target: SmtpTarget) -> smtplib.SMTP:
    """The thread's open connection to this server, opened on first use and then reused
    across messages (one TCP and TLS handshake and one login per batch, not per email)."""
    cached = getattr(_local, "smtp", None)
    if cached is not None and cached[0] == url:
        client: smtplib.SMTP = cached[1]
        return client
    close_smtp_connections()
    client = _connect(target)
    _local.smtp = (url, client)
    return client


def close_smtp_connections() -> None:
    """Say goodbye to the server (the end of a batch, a worker stopping)."""
    cached = getattr(_local, "smtp", None)
    _local.smtp = None
    if cached is not None:
        try:
            cached[1].quit()
        except (smtplib.SMTPException, OSError):
            cached[1].close()


def send_smtp(msg: EmailMessage, url: str, *, sender: str, recipients: Sequence[str]) -> str:
    """Send through the SMTP server; returns a short description for the result."""
    target = parse_smtp_url(url)
    for attempt in (1, 2):
        client = _connection(url, target)
        try:
            client.send_message(msg, from_addr=sender, to_addrs=list(recipients))
            break
        except smtplib.SMTPServerDisconnected:
            # the server closed an idle reused connection: reconnect once
            _local.smtp = None
            client.close()
            if attempt == 2:
                raise
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if codes and all(code >= 500 for code in codes):
                raise PermanentDeliveryError(
                    f"recipient refused by {target.host}: {exc.recipients}"
                ) from exc
            raise
        except smtplib.SMTPDataError as exc:
            if exc.smtp_code >= 500:
                raise PermanentDeliveryError(
                    f"message refused by {target.host}: {exc.smtp_code} {exc.smtp_error!r}"
                ) from exc
            raise
        except OSError:
            _local.smtp = None  # a broken socket is not reused
            client.close()
            raise
    return f"smtp://{target.host}:{target.port}"


atexit.register(close_smtp_connections)


def smtp_transport_error(exc: OSError, url: str) -> TransportError | None:
    """The server could not be reached or put the message off (connection refused, a
    timeout, a dropped connection, a 4xx answer): an outage to wait out, not a refusal. None
    for anything else (a 5xx stays a refusal). Only the host is named, never the URL (it may
    hold a password)."""
    try:
        target = parse_smtp_url(url)
        where = f"{target.host}:{target.port}"
    except RecoupError:
        where = "the SMTP server"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        if codes and all(400 <= code < 500 for code in codes):
            return TransportError(
                f"email server {where} deferred the recipient: {exc.recipients}",
                reason="server busy",
            )
        return None
    if isinstance(exc, smtplib.SMTPResponseException):
        if 400 <= exc.smtp_code < 500 or exc.smtp_code < 0:
            return TransportError(
                f"email server {where} answered {exc.smtp_code} {exc.smtp_error!r}",
                reason="server busy" if exc.smtp_code >= 0 else "server unreachable",
            )
        return None
    if isinstance(exc, smtplib.SMTPServerDisconnected) or not isinstance(
        exc, smtplib.SMTPException
    ):  # a closed connection, or a socket error: refused, timed out, no route, bad name
        detail = str(exc) or type(exc).__name__
        return TransportError(
            f"email server {where} unreachable: {type(exc).__name__}: {detail}",
            reason="server unreachable",
        )
    return None


def write_outbox(msg: EmailMessage, outbox: Path, *, instance_id: int, key: str) -> Path:
    """Write the message as `<outbox>/<instance id>-<safe key>.eml`; a retry overwrites it."""
    outbox.mkdir(parents=True, exist_ok=True)
    path = outbox / f"{instance_id}-{safe_filename(key)}.eml"
    tmp = path.with_suffix(".eml.tmp")
    tmp.write_bytes(msg.as_bytes())
    tmp.replace(path)
    return path


__all__ = [
    "Attachment",
    "PermanentDeliveryError",
    "build_message",
    "close_smtp_connections",
    "message_id_for",
    "parse_smtp_url",
    "safe_filename",
    "send_smtp",
    "smtp_transport_error",
    "write_outbox",
]
