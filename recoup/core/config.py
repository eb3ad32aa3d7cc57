"""Process configuration from the environment (RECOUP_*)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EnvConfig:
    database_url: str
    data_dir: Path
    smtp_url: str | None
    user: str | None

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def documents_dir(self) -> Path:
        return self.data_dir / "documents"


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
    )
