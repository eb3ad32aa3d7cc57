"""A run started for a face that cannot wait for it (the API: a run over a large book takes
many seconds): `run_dunning` in a thread of its own, with its own sessions and transactions as
the CLI's run has. The caller gets the run's id once its row is committed, or the error that
refused it (a run in progress, an as-of date R13 refuses) as if it had run the run itself.
A second process starting one at the same time is refused by the run lock."""

from __future__ import annotations

import logging
import queue
import threading
from datetime import date

from sqlalchemy.orm import Session, sessionmaker

from recoup.core.env import EnvConfig
from recoup.runs.service import run_dunning

logger = logging.getLogger("recoup.runs")


def start_run(
    factory: sessionmaker[Session],
    *,
    as_of: date,
    env: EnvConfig,
    execute: bool = True,
    actor: str = "system",
    allow_future: bool = False,
) -> int:
    """Start a run in a background thread; its id, once its row exists."""
    first: queue.Queue[int | BaseException] = queue.Queue()

    def work() -> None:
        began = False

        def started(run_id: int) -> None:
            nonlocal began
            began = True
            first.put(run_id)

        try:
            run_dunning(
                factory,
                as_of=as_of,
                env=env,
                execute=execute,
                actor=actor,
                allow_future=allow_future,
                started=started,
            )
        except BaseException as exc:  # the run's row records how it ended (failed)
            if not began:
                first.put(exc)
            else:
                logger.exception("run for %s failed", as_of)

    threading.Thread(target=work, name=f"recoup-run-{as_of}", daemon=True).start()
    outcome = first.get()
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


__all__ = ["start_run"]
