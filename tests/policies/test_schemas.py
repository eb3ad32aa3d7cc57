"""The policies' and settings' schemas read a body as the policy file is read, and the R14
refusal is a conflict in the file's words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from recoup.core.errors import Conflict, InvalidInput, NotFound
from recoup.domain.policy import Settings
from recoup.policies import repository
from recoup.policies.document import parse_config
from recoup.policies.schemas import (
    ActionCreate,
    ActionRead,
    ActionUpdate,
    LevelRead,
    PolicyCreate,
    PolicyRead,
    PolicyUpdate,
    TemplateRead,
)
from recoup.policies.service import (
    ConfigRefused,
    apply_document,
    ensure_removable,
    export_config,
    update_settings,
)
from recoup.settings.schemas import SettingsRead, SettingsUpdate
from recoup.settings.service import get_settings
from tests.factories import make_customer, make_invoice, make_plan

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policies.yaml"


@pytest.fixture
def example() -> dict[str, Any]:
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def test_a_policy_body_is_refused_in_the_files_words_at_its_path_in_the_body() -> None:
    with pytest.raises(InvalidInput) as caught:
        PolicyCreate.model_validate(
            {"name": "Std", "priority": "x", "levels": [{"code": "a", "days": 1.5}], "bogus": 1}
        )
    errors = {(e.field, e.message) for e in caught.value.errors}
    file_issues = parse_config(
        {"policies": [{"name": "Std", "priority": "x", "levels": [{"code": "a", "days": 1.5}]}]}
    ).issues
    for issue in file_issues:  # the same words as in a file, without `policies[0].`
        assert (issue.path.removeprefix("policies[0]."), issue.message) in errors
    assert ("levels[0].days", "must be an integer, not a number") in errors
    assert caught.value.status_code == 422


def test_create_and_update_schemas_give_domain_values() -> None:
    policy = PolicyCreate.model_validate(
        {
            "name": "Std",
            "priority": 10,
            "min_balance": {"EUR": "50.00"},
            "levels": [{"code": "a", "days": 5}, {"code": "b", "days": 20, "end": True}],
        }
    ).to_domain()
    assert policy.name == "Std" and [lv.code for lv in policy.levels] == ["a", "b"]
    assert PolicyUpdate.model_validate({"priority": 3}).applied_to(policy).priority == 3
    with pytest.raises(InvalidInput, match="priority: must be an integer, not text"):
        PolicyUpdate.model_validate({"priority": "z"}).applied_to(policy)

    fee = ActionCreate.model_validate(
        {"code": "fee", "type": "late_fee_fixed", "amounts": {"EUR": "15.00"}, "service": "L"}
    ).to_domain()
    assert fee.params["service"] == "L"
    with pytest.raises(InvalidInput, match="url: unknown field for type late_fee_fixed"):
        ActionUpdate.model_validate({"url": "https://x.example"}).applied_to(fee)


def test_settings_update_reads_like_the_file_and_checks_like_the_validator() -> None:
    update = SettingsUpdate.model_validate({"timezone": " Europe/Paris ", "max_levels": 5})
    assert update.applied_to(Settings()) == Settings(timezone="Europe/Paris", max_levels=5)
    with pytest.raises(InvalidInput) as caught:
        SettingsUpdate.model_validate({"max_levels": "ten", "colour": "red"})
    assert {e.field for e in caught.value.errors} == {"max_levels", "colour"}
    with pytest.raises(InvalidInput, match="timezone: unknown time zone 'Mars/Base'"):
        SettingsUpdate.model_validate({"timezone": "Mars/Base"}).applied_to(Settings())


def test_read_schemas_show_the_rows_in_the_files_field_names(
    session_factory: sessionmaker[Session], example: dict[str, Any]
) -> None:
    with session_factory() as session, session.begin():
        apply_document(session, example, "tester")
    with session_factory() as session:
        exported = export_config(session)
        policies = [PolicyRead.model_validate(row) for row in repository.list_policies(session)]
        actions = [ActionRead.model_validate(row) for row in repository.list_actions(session)]
        templates = [TemplateRead.model_validate(r) for r in repository.list_templates(session)]
        settings = SettingsRead.model_validate(get_settings(session))
    assert [p.name for p in policies] == [p["name"] for p in exported["policies"]]
    first = policies[0].model_dump(mode="json")
    file_first = exported["policies"][0]
    for key in ("name", "default", "priority", "transition", "attach_invoice"):
        assert first[key] == file_first[key]
    assert [lv["code"] for lv in first["levels"]] == [lv["code"] for lv in file_first["levels"]]
    assert isinstance(policies[0].levels[0], LevelRead)
    for read, written in zip(actions, exported["actions"], strict=True):
        dumped = read.model_dump(mode="json", exclude_none=True)
        dumped.pop("id")
        if dumped.get("mode") == "automatic":
            dumped.pop("mode")
        assert dumped == written
    assert [(t.code, t.language) for t in templates] == [
        (t["code"], t["language"]) for t in exported["templates"]
    ]
    assert settings.timezone == exported["settings"]["timezone"]


def test_removing_what_is_in_use_is_a_conflict_in_the_files_words(
    session_factory: sessionmaker[Session], example: dict[str, Any]
) -> None:
    with session_factory() as session, session.begin():
        apply_document(session, example, "tester")
        enterprise = repository.policy_by_name_or_not_found(session, "Enterprise")
        customer = make_customer(session)
        plan = make_plan(session, make_invoice(session, customer), policy=enterprise)
        plan_id = plan.id
    with session_factory() as session:
        with pytest.raises(Conflict) as caught:
            ensure_removable(session, "policy", "Enterprise")
        assert caught.value.status_code == 409
        assert caught.value.message == (
            f"policy 'Enterprise' cannot be removed: it is used by 1 plan (#{plan_id}) "
            "(set active: false instead)"
        )
        ensure_removable(session, "policy", "Standard")  # nothing follows it
        ensure_removable(session, "action", "fee_15")
        ensure_removable(session, "template", "reminder")

        without = {**example, "policies": example["policies"][:1]}
        with pytest.raises(ConfigRefused) as refused:
            apply_document(session, without, "tester")
        assert refused.value.status_code == 409
        assert refused.value.details == [
            f"policies: policy 'Enterprise' cannot be removed: it is used by 1 plan "
            f"(#{plan_id}) (set active: false instead)"
        ]
        session.rollback()

        # R11: an invoice type open plans cover stays, through the API's update too
        with pytest.raises(ConfigRefused, match="invoice type 'commercial' cannot be removed"):
            update_settings(session, SettingsUpdate(invoice_types=["service"]), "tester")
        session.rollback()
        with pytest.raises(NotFound):
            repository.get_policy_or_not_found(session, 10_000)
