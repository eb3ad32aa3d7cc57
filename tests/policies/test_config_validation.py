"""Policies as code, pure: parsing, validation checks and the round trip (no database)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from recoup.domain.enums import Mode
from recoup.domain.validation import ConfigUsage, Usage
from recoup.policies.document import ConfigIssue, config_to_dict, parse_config
from recoup.policies.service import check_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policies.yaml"
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def example() -> Doc:
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _action(doc: Doc, code: str) -> dict[str, Any]:
    return next(a for a in doc["actions"] if a["code"] == code)


def _standard(doc: Doc) -> dict[str, Any]:
    return doc["policies"][0]


def _set(path: list[Any], value: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(path: list[Any]) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _append(path: list[Any], make: Callable[[Doc], Any]) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        target: Any = doc
        for key in path:
            target = target[key]
        target.append(make(doc))

    return mutate


def _all(*mutations: Callable[[Doc], None]) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        for mutation in mutations:
            mutation(doc)

    return mutate


def _only_reminders(doc: Doc) -> None:
    _standard(doc)["levels"] = _standard(doc)["levels"][:1]


def _inactive_notice_2(doc: Doc) -> None:
    for template in doc["templates"]:
        if template["code"] == "notice_2":
            template["active"] = False


L = ["policies", 0, "levels"]
# In examples/policies.yaml: actions[0] email_reminder, [2] email_notice_2, [3] sms_notice,
# [4] fee_15, [5] fee_2pct, [6] interest_8, [8] call, [9] notify_crm, [11] suspend;
# Standard's levels: [0] before_due -5 (reminder), [1] first_notice 3, [2] second_notice 15,
# [3] final 30 (end).
CASES: list[tuple[str, Callable[[Doc], None], str, str]] = [
    # --- file shape (parser) ---
    ("unknown top-level key", _set(["polices"], []), "polices", "unknown field"),
    ("settings mode", _set(["settings", "mode"], "account"), "settings.mode", "unknown value"),
    ("settings catch_up", _set(["settings", "catch_up"], "some"), "settings.catch_up", "unknown"),
    ("max_levels type", _set(["settings", "max_levels"], "ten"), "settings.max_levels", "integer"),
    ("template channel", _set(["templates", 0, "channel"], "fax"), "templates[0].channel", "fax"),
    (
        "template language",
        _set(["templates", 0, "language"], "english"),
        "templates[0].language",
        "'english' is not a known language code",
    ),
    ("template body", _delete(["templates", 6, "body"]), "templates[6].body", "is required"),
    ("action type", _set(["actions", 0, "type"], "send_mail"), "actions[0].type", "send_mail"),
    (
        "field of another type",
        _set(["actions", 0, "amounts"], {"EUR": "1"}),
        "actions[0].amounts",
        "unknown field for type send_email",
    ),
    (
        "float amount",
        _set(["actions", 4, "amounts", "EUR"], 15.5),
        "actions[4].amounts.EUR",
        'quoted decimal strings, e.g. "15.5"',
    ),
    ("not a number", _set(["actions", 6, "annual_rate"], "8%"), "actions[6].annual_rate", "8%"),
    ("level days", _set([*L, 1, "days"], "3"), "policies[0].levels[1].days", "integer"),
    ("priority missing", _delete(["policies", 0, "priority"]), "policies[0].priority", "required"),
    ("transition", _set(["policies", 0, "transition"], "days"), "policies[0].transition", "days"),
    ("bad boolean", _set(["policies", 0, "active"], "yes"), "policies[0].active", "true or false"),
    (
        "rules combinator",
        _set(["policies", 1, "rules"], {"either": []}),
        "policies[1].rules",
        "{all: [...]} or {any: [...]}",
    ),
    (
        "float rule value",
        _set(["policies", 1, "rules", "any", 1, "all", 1, "value"], 1.5),
        "policies[1].rules.any[1].all[1].value",
        "quoted",
    ),
    # --- settings ---
    ("no invoice types", _set(["settings", "invoice_types"], []), "settings.invoice_types", "one"),
    (
        "customer_balance subset",
        _set(["settings", "customer_balance"], ["adjustment"]),
        "settings.customer_balance[0]",
        "not one of settings.invoice_types",
    ),
    ("timezone", _set(["settings", "timezone"], "Europe/Pariss"), "settings.timezone", "Pariss"),
    (
        "max_levels",
        _set(["settings", "max_levels"], 4),
        "policies[1].levels",
        "has 5 levels; settings.max_levels allows 4",
    ),
    # --- templates ---
    (
        "duplicate template language",
        _append(["templates"], lambda doc: copy.deepcopy(doc["templates"][0])),
        "templates[8].language",
        "already exists in language 'en' (templates[0])",
    ),
    ("email subject", _delete(["templates", 0, "subject"]), "templates[0].subject", "subject"),
    ("jinja syntax", _set(["templates", 2, "body"], "{{ oops"), "templates[2].body", "line 1"),
    ("empty body", _set(["templates", 5, "body"], "  "), "templates[5].body", "must not be empty"),
    # --- actions ---
    (
        "duplicate action",
        _append(["actions"], lambda doc: copy.deepcopy(doc["actions"][4])),
        "actions[12].code",
        "'fee_15' is defined twice (actions[4])",
    ),
    ("send without template", _delete(["actions", 0, "template"]), "actions[0].template", "needs"),
    ("unknown template", _set(["actions", 0, "template"], "nope"), "actions[0].template", "nope"),
    (
        "template channel mismatch",
        _set(["actions", 3, "template"], "notice_1"),
        "actions[3].template",
        "'notice_1' is for email, not sms",
    ),
    (
        "inactive template",
        _inactive_notice_2,
        "actions[2].template",
        "no active email version",
    ),
    ("manual without role", _delete(["actions", 8, "role"]), "actions[8].role", "role"),
    (
        "mode manual without role",
        _set(["actions", 0, "mode"], "manual"),
        "actions[0].role",
        "a manual action needs the role",
    ),
    ("fixed fee amounts", _set(["actions", 4, "amounts"], {}), "actions[4].amounts", "at least"),
    (
        "fixed fee currency",
        _set(["actions", 4, "amounts"], {"EUX": "15.00"}),
        "actions[4].amounts.EUX",
        "unknown currency 'EUX'",
    ),
    (
        "fixed fee positive",
        _set(["actions", 4, "amounts", "EUR"], "0"),
        "actions[4].amounts.EUR",
        "must be positive",
    ),
    ("fee service", _delete(["actions", 4, "service"]), "actions[4].service", "needs a service"),
    ("percent service", _delete(["actions", 5, "service"]), "actions[5].service", "service"),
    ("interest service", _delete(["actions", 6, "service"]), "actions[6].service", "service"),
    ("percent rate", _set(["actions", 5, "rate"], "150"), "actions[5].rate", "between 0 and 100"),
    ("percent rate missing", _delete(["actions", 5, "rate"]), "actions[5].rate", "is required"),
    (
        "percent min above max",
        _set(["actions", 5, "min", "EUR"], "600.00"),
        "actions[5].min.EUR",
        "above max 500.00",
    ),
    (
        "negative annual rate",
        _set(["actions", 6, "annual_rate"], "-1"),
        "actions[6].annual_rate",
        "must not be negative",
    ),
    (
        "status cancelled",
        _set(["actions", 11, "status"], "cancelled"),
        "actions[11].status",
        "'cancelled' is final",
    ),
    ("status missing", _delete(["actions", 11, "status"]), "actions[11].status", "is required"),
    ("webhook url", _delete(["actions", 9, "url"]), "actions[9].url", "is required"),
    ("webhook scheme", _set(["actions", 9, "url"], "ftp://x"), "actions[9].url", "http(s)"),
    # --- policies ---
    (
        "duplicate policy name",
        _set(["policies", 1, "name"], "Standard"),
        "policies[1].name",
        "'Standard' is defined twice",
    ),
    (
        "duplicate priority",
        _set(["policies", 1, "priority"], 100),
        "policies[1].priority",
        "priority 100 is already policy 'Standard'",
    ),
    (
        "two defaults",
        _set(["policies", 1, "default"], True),
        "policies[1].default",
        "only one policy can be the default",
    ),
    ("policy currency", _set(["policies", 0, "currency"], "EURO"), "policies[0].currency", "EURO"),
    (
        "min_balance currency",
        _set(["policies", 0, "min_balance"], {"ZZZ": "1"}),
        "policies[0].min_balance.ZZZ",
        "unknown currency",
    ),
    ("no end level", _set([*L, 3, "end"], False), "policies[0].levels", "exactly one end level"),
    (
        "two end levels",
        _set([*L, 2, "end"], True),
        "policies[0].levels[3].end",
        "only one end level allowed (already 'second_notice')",
    ),
    (
        "end not last",
        _set([*L, 3, "days"], 12),
        "policies[0].levels[3].days",
        "greatest days; 'second_notice' has 15",
    ),
    ("reminder days", _set([*L, 0, "days"], 2), "policies[0].levels[0].days", "must be negative"),
    (
        "negative days without reminder",
        _set([*L, 1, "days"], -1),
        "policies[0].levels[1].days",
        "only reminder levels",
    ),
    (
        "reminder and end",
        _all(_set([*L, 3, "reminder"], True), _set([*L, 3, "days"], -1)),
        "policies[0].levels[3].end",
        "both a reminder and the end",
    ),
    ("only reminders", _only_reminders, "policies[0].levels", "not a reminder"),
    (
        "duplicate level code",
        _set([*L, 2, "code"], "first_notice"),
        "policies[0].levels[2].code",
        "'first_notice' is used twice (levels[1])",
    ),
    (
        "duplicate level days",
        _set([*L, 2, "days"], 3),
        "policies[0].levels[2].days",
        "'first_notice' already fires at 3 days",
    ),
    (
        "unknown action on level",
        _set([*L, 1, "actions"], ["nope"]),
        "policies[0].levels[1].actions[0]",
        "no action 'nope'",
    ),
    (
        "action twice on level",
        _set([*L, 1, "actions"], ["email_notice_1", "email_notice_1"]),
        "policies[0].levels[1].actions[1]",
        "listed twice",
    ),
    (
        "manual action on reminder",
        _set([*L, 0, "actions"], ["call"]),
        "policies[0].levels[0].actions[0]",
        "a reminder level can only send messages",
    ),
    (
        "rule operator",
        _set(["policies", 1, "rules", "any", 0, "op"], "like"),
        "policies[1].rules.any[0].op",
        "unknown operator 'like'",
    ),
    (
        "rule field",
        _set(["policies", 1, "rules", "any", 1, "all", 0, "field"], "size"),
        "policies[1].rules.any[1].all[0].field",
        "unknown customer field 'size'",
    ),
    (
        "in needs a list",
        _set(["policies", 1, "rules", "any", 0, "value"], "enterprise"),
        "policies[1].rules.any[0].value",
        "in needs a list",
    ),
    (
        "comparison with a list",
        _set(["policies", 1, "rules", "any", 1, "all", 1, "value"], ["1"]),
        "policies[1].rules.any[1].all[1].value",
        "not a list",
    ),
]


def test_example_file_is_valid(example: Doc) -> None:
    _config, issues = check_config(copy.deepcopy(example))
    assert issues == []


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [pytest.param(m, p, f, id=name) for name, m, p, f in CASES],
)
def test_each_check(example: Doc, mutate: Callable[[Doc], None], path: str, fragment: str) -> None:
    document = copy.deepcopy(example)
    mutate(document)
    _config, issues = check_config(document)
    matching = [issue for issue in issues if issue.path == path]
    assert matching, f"no issue at {path}; got {[str(i) for i in issues]}"
    assert any(fragment in issue.message for issue in matching), [str(i) for i in matching]


USAGE_CASES: list[tuple[str, Callable[[Doc], None], ConfigUsage, str, str]] = [
    (
        "mode locked by open plans (R11)",
        _set(["settings", "mode"], "customer"),
        ConfigUsage(current_mode=Mode.invoice, open_plan_count=2),
        "settings.mode",
        "cannot change from invoice to customer while 2 plans are active or paused",
    ),
    (
        "invoice type locked by open plans (R11)",
        lambda doc: None,
        ConfigUsage(current_mode=Mode.invoice, open_plan_invoice_types={"adjustment": 1}),
        "settings.invoice_types",
        "'adjustment' cannot be removed while 1 plan cover",
    ),
    (
        "used policy (R14)",
        lambda doc: None,
        ConfigUsage(used_policies={"Legacy": Usage(plans=12, plan_ids=(1, 2, 3, 4, 5))}),
        "policies",
        "policy 'Legacy' cannot be removed: it is used by 12 plans (#1, #2, #3, #4, #5, …)",
    ),
    (
        "policy named by customers (R3, R14)",
        lambda doc: None,
        ConfigUsage(used_policies={"Legacy": Usage(customers=2)}),
        "policies",
        "policy 'Legacy' cannot be removed: it is used by 2 customers (as their explicit policy)",
    ),
    (
        "used level (R14)",
        lambda doc: None,
        ConfigUsage(used_levels={("Standard", "legacy_call"): Usage(plans=1, plan_ids=(7,))}),
        "policies[0].levels",
        "level 'legacy_call' of policy 'Standard' cannot be removed: it is used by 1 plan (#7)",
    ),
    (
        "used action (R14)",
        lambda doc: None,
        ConfigUsage(used_actions={"old_fee": Usage(action_instances=3)}),
        "actions",
        "action 'old_fee' cannot be removed: it is used by 3 action instances",
    ),
    (
        "used template (R14)",
        lambda doc: None,
        ConfigUsage(used_templates={"old_notice": Usage(action_instances=1)}),
        "templates",
        "template 'old_notice' cannot be removed: it is used by 1 action instance",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "usage", "path", "fragment"),
    [pytest.param(m, u, p, f, id=name) for name, m, u, p, f in USAGE_CASES],
)
def test_checks_against_usage(
    example: Doc, mutate: Callable[[Doc], None], usage: ConfigUsage, path: str, fragment: str
) -> None:
    document = copy.deepcopy(example)
    mutate(document)
    _config, issues = check_config(document, usage)
    assert any(issue.path == path and fragment in issue.message for issue in issues), [
        str(i) for i in issues
    ]


def test_usage_that_is_still_present_is_fine(example: Doc) -> None:
    usage = ConfigUsage(
        current_mode=Mode.invoice,
        open_plan_count=3,
        open_plan_invoice_types={"commercial": 3},
        used_policies={"Standard": Usage(plans=3)},
        used_levels={("Standard", "final"): Usage(plans=1)},
        used_actions={"fee_15": Usage(action_instances=2)},
        used_templates={"notice_1": Usage(action_instances=2)},
    )
    assert check_config(copy.deepcopy(example), usage)[1] == []


def test_every_issue_is_collected(example: Doc) -> None:
    document = copy.deepcopy(example)
    document["settings"]["timezone"] = "Mars/Olympus"
    document["actions"][4]["amounts"]["EUR"] = 15.0
    _standard(document)["levels"][2]["days"] = 30
    _config, issues = check_config(document)
    assert [i.path for i in issues] == [
        "actions[4].amounts.EUR",
        "settings.timezone",
        "policies[0].levels[3].days",
    ]


def test_a_broken_item_is_reported_once(example: Doc) -> None:
    """A bad action type must not also make every level that lists the action an error."""
    document = copy.deepcopy(example)
    document["actions"][4]["type"] = "late_fee"
    _config, issues = check_config(document)
    assert issues == [
        ConfigIssue(
            "actions[4].type",
            "unknown value 'late_fee' (expected one of: send_email, send_letter, send_sms, "
            "late_fee_fixed, late_fee_percent, interest, change_account_status, retry_payment, "
            "webhook, manual)",
        )
    ]


def test_round_trip(example: Doc) -> None:
    parsed = parse_config(copy.deepcopy(example))
    assert parsed.ok
    exported = config_to_dict(parsed.config)
    again = parse_config(yaml.safe_load(yaml.safe_dump(exported, sort_keys=False)))
    assert again.ok
    assert again.config == parsed.config
    assert config_to_dict(again.config) == exported
    # Amounts stay decimal strings.
    fee = next(a for a in exported["actions"] if a["code"] == "fee_15")
    assert fee["amounts"] == {"EUR": "15.00", "USD": "15.00", "GBP": "12.50"}


def test_spec_shape_and_defaults() -> None:
    parsed = parse_config(
        {
            "actions": [{"code": "late", "type": "late_fee_fixed", "amounts": {"EUR": 15}}],
            "policies": [
                {
                    "name": "P",
                    "priority": 1,
                    "levels": [{"code": "end", "days": 10, "end": True}],
                    "rules": {"field": "country", "op": "=", "value": "FR"},
                }
            ],
        }
    )
    assert parsed.ok, parsed.issues
    config = parsed.config
    assert config.settings.invoice_types == ("commercial",)
    assert _action(config_to_dict(config), "late")["amounts"] == {"EUR": "15"}
    policy = config.policies[0]
    assert policy.rules is not None and policy.rules.combinator == "all"
    assert config_to_dict(config)["policies"][0]["rules"] == {
        "all": [{"field": "country", "op": "=", "value": "FR"}]
    }


def test_not_a_mapping() -> None:
    parsed = parse_config(["a", "list"])
    assert [str(i) for i in parsed.issues] == ["(file): must be a mapping, not a list"]


# --- templates rendered against a sample context (issue 9.7) -------------------------------

DEMO = Path(__file__).resolve().parents[2] / "recoup" / "demo" / "policies.yaml"


def _check_file(document: Doc) -> list[str]:
    from recoup.policies.service import check_file

    return [str(issue) for issue in check_file(document)[1]]


def _template(doc: Doc, code: str, language: str = "en") -> dict[str, Any]:
    return next(t for t in doc["templates"] if t["code"] == code and t["language"] == language)


def test_the_shipped_files_render_cleanly(example: Doc) -> None:
    assert _check_file(copy.deepcopy(example)) == []
    assert _check_file(yaml.safe_load(DEMO.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize(
    ("part", "source", "expected"),
    [
        ("body", "Hi\n{{ balance|moneyy }}", "templates[2].body: line 2: No filter named 'moneyy'"),
        ("subject", "Invoice {{ invoice.numbr }}", "templates[2].subject: line 1: "),
        ("body", "{{ custmer.name }}", "templates[2].body: line 1: 'custmer' is undefined"),
        ("body", "a\nb\n{% if %}", "templates[2].body: template error on line 3"),
        ("body", "{{ customer.name|center(10**9) }}", "templates[2].body: line 1: over a"),
        ("body", "{{ balance.amount.__class__ }}", "templates[2].body: line 1: forbidden"),
        ("body", "{{ company.ibna }}", "templates[2].body: line 1: "),
    ],
)
def test_a_template_that_would_fail_at_run_time_is_refused_at_its_place(
    example: Doc, part: str, source: str, expected: str
) -> None:
    document = copy.deepcopy(example)
    assert document["templates"][2]["code"] == "notice_1"
    document["templates"][2][part] = source
    problems = _check_file(document)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_an_undefined_variable_lists_what_templates_see(example: Doc) -> None:
    document = copy.deepcopy(example)
    document["templates"][2]["body"] = "{{ custmer.name }}"
    (problem,) = _check_file(document)
    for name in ("customer", "invoice", "invoices", "balance", "plan", "level", "company"):
        assert name in problem


def test_each_template_is_rendered_as_its_mode_and_its_levels_see_it(example: Doc) -> None:
    document = copy.deepcopy(example)
    document["settings"]["mode"] = "customer"
    # notice_1 is sent by plans: customer mode has no `invoice`, only `invoices`
    problems = _check_file(document)
    assert any(
        p.startswith("templates[2].subject: line 1: 'None' has no attribute 'number'")
        and "only invoices" in p
        for p in problems
    ), problems
    # `reminder` is sent by a reminder level: one invoice in both modes, so it passes
    assert not any(p.startswith(("templates[0]", "templates[1]")) for p in problems), problems
    for template in document["templates"]:
        template["subject"] = template.get("subject") and "{{ invoices[0].number }}"
        if template["code"] != "reminder":  # plans' messages: no `invoice` in customer mode
            template["body"] = template["body"].replace("invoice.", "invoices[0].")
    _template(document, "reminder")["body"] = "{{ invoice.number }} {{ plan.id }}"
    problems = _check_file(document)
    assert problems == [
        "templates[0].body: line 1: 'None' has no attribute 'id' "
        "(a reminder level's message has no plan)"
    ]


def test_the_fee_and_payment_variables_validate(example: Doc) -> None:
    document = copy.deepcopy(example)
    document["templates"][2]["body"] = (
        "{% for charge in charges %}{{ charge.service }} {{ charge.amount|money }} "
        "{{ charge.status }} {{ charge.created_on|date }} {{ charge.currency }}{% endfor %}\n"
        "{{ fees_total|money }} {{ total_due|money }} {{ deadline|date if deadline }}\n"
        "{{ pay_url or '' }} {{ customer.attributes.segment }}"
    )
    assert _check_file(document) == []


def test_levels_must_be_listed_in_ascending_days(example: Doc) -> None:
    document = copy.deepcopy(example)
    levels = _standard(document)["levels"]
    levels[1], levels[2] = levels[2], levels[1]
    _config, issues = check_config(document)
    assert [str(i) for i in issues if i.path == "policies[0].levels[2].days"] == [
        "policies[0].levels[2].days: levels must be listed in ascending days: 'first_notice' "
        "(3) comes after 'second_notice' (15)"
    ]


def test_fee_warnings_name_the_currencies_a_fixed_fee_will_meet(example: Doc) -> None:
    from recoup.domain.validation import fee_warnings

    document = copy.deepcopy(example)
    _action(document, "fee_15")["amounts"] = {"EUR": "15.00"}
    config, issues = check_config(document)
    assert issues == []
    warnings = [str(w) for w in fee_warnings(config, {"JPY": 3, "EUR": 10})]
    assert warnings == [
        "actions[4].amounts: no amount for JPY (3 customers have invoices in JPY): "
        "the fee will be skipped in JPY",
        "actions[4].amounts: no amount for USD (policy 'Standard' has a min_balance in USD): "
        "the fee will be skipped in USD",
        "actions[4].amounts: no amount for GBP (policy 'Standard' has a min_balance in GBP): "
        "the fee will be skipped in GBP",
    ]
