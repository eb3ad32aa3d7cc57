"""Process configuration from the environment (RECOUP_*)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from recoup.core.errors import RecoupError
from recoup.domain.redact import redact_text, url_secrets

DEFAULT_FILE_MODE = 0o600  # emails and letters hold personal data: the owner only
DEFAULT_DIR_MODE = 0o700
DEFAULT_INVOICE_MAX_MB = 10
DEFAULT_API_KEY_CACHE_SECONDS = 5.0
MAX_API_KEY_CACHE_SECONDS = 300.0


@dataclass(frozen=True)
class EnvConfig:
    database_url: str
    data_dir: Path
    smtp_url: str | None
    user: str | None
    # SMS provider (send_sms), the billing system's retry endpoint (retry_payment) and the
    # secret that signs webhooks (webhook, retry_payment, outgoing events): all optional.
    sms_url: str | None = None
    sms_token: str | None = None
    billing_webhook_url: str | None = None
    webhook_secret: str | None = None
    # Invoice PDFs are read from this folder only (unset: <data dir>/invoices); see
    # `invoices_dir`. Files Recoup writes get `file_mode`, folders it creates `dir_mode`.
    invoice_dir: Path | None = None
    invoice_max_bytes: int = DEFAULT_INVOICE_MAX_MB * 1024 * 1024
    file_mode: int = DEFAULT_FILE_MODE
    dir_mode: int = DEFAULT_DIR_MODE
    # how long the API may trust a key it checked (a revoked key is refused this much later
    # at most); 0: every request reads its key
    api_key_cache_seconds: float = DEFAULT_API_KEY_CACHE_SECONDS

    @property
    def invoices_dir(self) -> Path:
        return self.invoice_dir or self.data_dir / "invoices"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value this configuration holds (passwords and tokens in the URLs, the
        SMS token, the webhook secret): masked wherever a message quotes one (issue 8.5)."""
        found: list[str] = []
        for url in (self.database_url, self.smtp_url, self.sms_url, self.billing_webhook_url):
            found += url_secrets(url)
        found += [value for value in (self.sms_token, self.webhook_secret) if value]
        return tuple(found)

    def redact(self, text: str) -> str:
        """`text` without this configuration's secrets or any URL's credentials."""
        return redact_text(text, self.secrets)

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def documents_dir(self) -> Path:
        return self.data_dir / "documents"


def _mode(name: str, default: int) -> int:
    """An octal permission that leaves Recoup itself (the owner) what `default` gives it."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        mode = int(value, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777 or mode & default != default:
        raise RecoupError(
            f"{name} must be an octal permission like {default:o} or {default | 0o040:o} "
            f"that keeps {default:o} for the owner, not {value!r}"
        )
    return mode


def _megabytes(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default * 1024 * 1024
    try:
        megabytes = float(value)
    except ValueError:
        megabytes = -1
    if not 0 < megabytes <= 1024:
        raise RecoupError(f"{name} must be a size in MB between 0 and 1024, not {value!r}")
    return int(megabytes * 1024 * 1024)


def _seconds(name: str, default: float, maximum: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1
    if not 0 <= seconds <= maximum:
        raise RecoupError(
            f"{name} must be a number of seconds from 0 to {maximum:g}, not {value!r}"
        )
    return seconds


def load_env() -> EnvConfig:
    data_dir = Path(os.environ.get("RECOUP_DATA_DIR", "recoup-data")).resolve()
    url = os.environ.get("RECOUP_DATABASE_URL") or f"sqlite:///{Path('recoup.db').resolve()}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        # psycopg 3 is the driver; accept the plain URL users copy from their provider.
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return EnvConfig(
        database_url=url,
        data_dir=data_dir,
        smtp_url=os.environ.get("RECOUP_SMTP_URL") or None,
        user=os.environ.get("RECOUP_USER") or None,
        sms_url=os.environ.get("RECOUP_SMS_URL") or None,
        sms_token=os.environ.get("RECOUP_SMS_TOKEN") or None,
        billing_webhook_url=os.environ.get("RECOUP_BILLING_WEBHOOK_URL") or None,
        webhook_secret=os.environ.get("RECOUP_WEBHOOK_SECRET") or None,
        invoice_dir=(
            Path(os.environ["RECOUP_INVOICE_DIR"]).resolve()
            if os.environ.get("RECOUP_INVOICE_DIR")
            else None
        ),
        invoice_max_bytes=_megabytes("RECOUP_INVOICE_MAX_MB", DEFAULT_INVOICE_MAX_MB),
        file_mode=_mode("RECOUP_FILE_MODE", DEFAULT_FILE_MODE),
        dir_mode=_mode("RECOUP_DIR_MODE", DEFAULT_DIR_MODE),
        api_key_cache_seconds=_seconds(
            "RECOUP_API_KEY_CACHE_SECONDS", DEFAULT_API_KEY_CACHE_SECONDS, MAX_API_KEY_CACHE_SECONDS
        ),
    )
