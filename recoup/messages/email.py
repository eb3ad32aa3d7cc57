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
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from recoup.core.env import DEFAULT_DIR_MODE, DEFAULT_FILE_MODE
from recoup.core.errors import RecoupError
from recoup.core.files import write_private
from recoup.messages.errors import TransportError

SMTP_TIMEOUT = 30.0
DEFAULT_SENDER = "recoup@localhost"
_TRUE = {"1", "true", "yes", "on"}


class PermanentDeliveryError(RecoupError):
    """The server refused the message for good (5xx): retrying cannot help."""


class UnsafeHeader(PermanentDeliveryError):
    """A header value with a line break or another control character (a name stored with
    CR/LF): it could inject headers, and the same data fails the same way on every retry."""


def _header(name: str, value: str) -> str:
    bad = next((c for c in value if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise UnsafeHeader(
            f"the {name} header would contain a control character (U+{ord(bad):04X}): "
            "not sent; correct the data it comes from (the customer's name, the subject)"
        )
    return value


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
    msg["From"] = _header("From", formataddr((sender_name, sender)) if sender_name else sender)
    msg["To"] = _header("To", formataddr((to_name, to)) if to_name else to)
    if reply_to:
        msg["Reply-To"] = _header("Reply-To", reply_to)
    msg["Subject"] = _header("Subject", subject)
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
    insecure: bool = False  # the URL allows a login over a cleartext connection


_URL_FORM = "smtp://host:587?starttls=true or smtps://host:465 (user:password@ before the host)"


def parse_smtp_url(url: str) -> SmtpTarget:
    """`smtp://user:pass@host:port?starttls=true` or `smtps://user:pass@host:port`.

    Errors never quote the URL: it holds the password (issue 8.5). A login over a cleartext
    connection is refused unless the URL says `insecure=true` (issue 8.6)."""
    try:
        parts = urlsplit(url.strip())
        host, port_number = parts.hostname, parts.port
    except ValueError:  # a bad port, or a password with an unencoded "/", "?" or "#"
        raise RecoupError(
            "RECOUP_SMTP_URL is malformed (its port is not a number, or its password holds "
            "an unencoded / ? # or @: percent-encode them, e.g. / as %2F); expected " + _URL_FORM
        ) from None
    if parts.scheme not in ("smtp", "smtps"):
        raise RecoupError(f"RECOUP_SMTP_URL must start with smtp:// or smtps://, e.g. {_URL_FORM}")
    if not host:
        raise RecoupError(f"RECOUP_SMTP_URL has no host; expected {_URL_FORM}")
    query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
    use_ssl = parts.scheme == "smtps"
    starttls = not use_ssl and (query.get("starttls") in _TRUE or query.get("tls") in _TRUE)
    insecure = query.get("insecure") in _TRUE
    port = port_number or (465 if use_ssl else 587 if starttls else 25)
    username = unquote(parts.username) if parts.username else None
    if username and not (use_ssl or starttls or insecure):
        raise RecoupError(
            f"RECOUP_SMTP_URL has a user and password but no TLS: Recoup does not send a "
            f"password to {host}:{port} in clear text. Add ?starttls=true (or use smtps://); "
            "only for a server on a trusted private network, add ?insecure=true"
        )
    return SmtpTarget(
        host=host,
        port=port,
        ssl=use_ssl,
        starttls=starttls,
        username=username,
        password=unquote(parts.password) if parts.password else None,
        insecure=insecure,
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


def outbox_name(instance_id: int, key: str) -> str:
    """`<instance id, zero-padded>-<safe key>.eml`: names sort in the order the actions were
    queued (`ls`, a file manager), and a retry of the same instance has the same name."""
    return f"{instance_id:010d}-{safe_filename(key)}.eml"


def write_outbox(
    msg: EmailMessage,
    outbox: Path,
    *,
    instance_id: int,
    key: str,
    file_mode: int = DEFAULT_FILE_MODE,
    dir_mode: int = DEFAULT_DIR_MODE,
) -> Path:
    """Write the message as `<outbox>/<outbox_name>`; a retry overwrites it.
    Through a fresh temporary file, owner-only (recoup.core.files): a symlink planted in the
    outbox is never followed and a full disk leaves no partial file behind."""
    path = outbox / outbox_name(instance_id, key)
    return write_private(
        path, msg.as_bytes(), below=outbox.parent, file_mode=file_mode, dir_mode=dir_mode
    )


__all__ = [
    "Attachment",
    "PermanentDeliveryError",
    "UnsafeHeader",
    "build_message",
    "close_smtp_connections",
    "message_id_for",
    "outbox_name",
    "parse_smtp_url",
    "safe_filename",
    "send_smtp",
    "smtp_transport_error",
    "write_outbox",
]
