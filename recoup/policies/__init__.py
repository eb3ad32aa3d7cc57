"""Policies as code: the configuration file (SPEC §4) against the database."""

from recoup.policies.service import (
    ChangeReport,
    apply_config,
    apply_document,
    check_document,
    config_usage,
    export_config,
    load_config,
)

__all__ = [
    "ChangeReport",
    "apply_config",
    "apply_document",
    "check_document",
    "config_usage",
    "export_config",
    "load_config",
]
