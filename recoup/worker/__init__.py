"""The worker: executes queued action instances outside the daily run (`recoup worker`)."""

from recoup.worker.service import (
    BatchReport,
    StopFlag,
    WorkerAlreadyRunning,
    WorkerOptions,
    WorkerTotals,
    default_worker_id,
    run_worker,
    stop_on_signals,
    worker_lock,
)

__all__ = [
    "BatchReport",
    "StopFlag",
    "WorkerAlreadyRunning",
    "WorkerOptions",
    "WorkerTotals",
    "default_worker_id",
    "run_worker",
    "stop_on_signals",
    "worker_lock",
]
