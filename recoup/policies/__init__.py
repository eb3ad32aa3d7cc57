"""Policies as code (SPEC §4): the policy file (`yaml_text`: its text; `document`: the mapping
it holds ↔ `Config`), checked and applied against the database (`service`), its queries
(`repository`) and the API's shapes (`schemas`)."""

from recoup.policies.repository import config_usage
from recoup.policies.service import (
    ChangeReport,
    apply_config,
    apply_document,
    check_document,
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
