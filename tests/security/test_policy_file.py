"""Policy files as an attacker or a careless operator would write them (issue 8.3, 8.8 and
what held): YAML aliases that expand to millions of values, huge files, deep nesting, complex
keys, out-of-range integers and Python tags. Each is refused with one line naming its place,
quickly, and nothing is applied; a corrected file then applies. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from recoup.cli.main import app
from recoup.models import LogEntry, PolicyRow, TemplateRow

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parent.parent.parent / "examples" / "policies.yaml"

HEAD = """\
settings: {mode: invoice}
templates:
  - {code: notice, channel: email, language: en, subject: "Overdue", body: "Please pay."}
actions:
  - {code: email_notice, type: send_email, template: notice}
policies:
  - name: Standard
    default: true
    priority: 10
    levels:
      - {code: first, days: 5, actions: [email_notice]}
      - {code: final, days: 20, end: true, actions: []}
    rules:
      all:
        - field: category
          op: in
"""


def billion_laughs(levels: int = 9) -> str:
    """A rule value of 10**levels strings in a file of about 1.4 KB."""
    lines = [
        "          value:",
        '            - &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    for n in range(1, levels):
        aliases = ",".join([f"*l{n - 1}"] * 10)
        lines.append(f"            - &l{n} [{aliases}]")
    return HEAD + "\n".join(lines) + "\n"


def recoup(*args: str) -> Result:
    return runner.invoke(app, list(args), catch_exceptions=False)


def snapshot(factory: sessionmaker[Session]) -> tuple[int, int, int, list[str]]:
    with factory() as session:
        return (
            int(session.scalar(select(func.count()).select_from(PolicyRow)) or 0),
            int(session.scalar(select(func.count()).select_from(TemplateRow)) or 0),
            int(session.scalar(select(func.count()).select_from(LogEntry)) or 0),
            [str(rules) for rules in session.scalars(select(PolicyRow.rules))],
        )


def test_a_billion_laughs_file_is_refused_quickly_and_a_corrected_one_applies(
    env: dict[str, str], tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    assert recoup("config", "apply", str(EXAMPLE)).exit_code == 0
    before = snapshot(session_factory)
    bomb = tmp_path / "laughs.yaml"
    bomb.write_text(billion_laughs(), encoding="utf-8")
    assert bomb.stat().st_size < 1_500
    for command in ("validate", "apply"):
        started = time.monotonic()
        result = recoup("config", command, str(bomb))
        assert time.monotonic() - started < 5
        assert result.exit_code == 1
        assert f"{bomb}:" in result.output and "aliases (*l0) are not allowed" in result.output
        assert "Traceback" not in result.output
    assert snapshot(session_factory) == before

    corrected = tmp_path / "corrected.yaml"
    corrected.write_text(HEAD + "          value: [smb, mid_market]\n", encoding="utf-8")
    result = recoup("config", "apply", str(corrected))
    assert result.exit_code == 0, result.output
    with session_factory() as session:
        policy = session.scalars(select(PolicyRow).where(PolicyRow.name == "Standard")).one()
        assert policy.rules == {
            "all": [{"field": "category", "op": "in", "value": ["smb", "mid_market"]}]
        }


@pytest.mark.parametrize(
    ("value", "place", "message"),
    [
        ("[" + ", ".join(f"v{i}" for i in range(1001)) + "]", "value", "at most 1,000"),
        ("[[a, b], c]", "value[0]", "cannot hold lists"),
        ("{a: 1}", "value", "not a mapping"),
        ("x" * 1001, "value", "characters long; at most 1,000"),
    ],
)
def test_rule_values_are_short_flat_lists_of_scalars(
    env: dict[str, str],
    tmp_path: Path,
    session_factory: sessionmaker[Session],
    value: str,
    place: str,
    message: str,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(HEAD + f"          value: {value}\n", encoding="utf-8")
    result = recoup("config", "apply", str(path))
    assert result.exit_code == 1
    assert f"policies[0].rules.all[0].{place}: " in result.output
    assert message in result.output
    assert snapshot(session_factory)[:3] == (0, 0, 0)


def _one_line_error(result: Result, path: Path) -> str:
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {path}:")
    return lines[0]


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("settings: " + "[" * 5000 + "]" * 5000 + "\n", ":1:", "nested more than 50 levels"),
        ("".join("  " * i + f"k{i}:\n" for i in range(200)), ":51:", "nested more than 50"),
        ("settings:\n  ? [a, b]\n  : 1\n", ":2:5:", "a key must be a plain value"),
        ("settings: {[a, b]: 1}\n", ":1:12:", "a key must be a plain value"),
    ],
)
def test_deep_nesting_and_complex_keys_are_one_line_errors(
    env: dict[str, str],
    tmp_path: Path,
    session_factory: sessionmaker[Session],
    text: str,
    where: str,
    message: str,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    for command in ("validate", "apply"):
        line = _one_line_error(recoup("config", command, str(path)), path)
        assert f"{path}{where}" in line and message in line
    assert snapshot(session_factory)[:3] == (0, 0, 0)


def test_a_file_over_one_megabyte_is_refused_before_it_is_read(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * 1_100_000 + "\n", encoding="utf-8")
    result = recoup("config", "apply", str(path))
    assert result.exit_code == 1
    assert "a configuration file may have at most 1,000,000" in result.output


@pytest.mark.parametrize(
    ("edit", "place"),
    [
        (
            (
                "settings: {mode: invoice}",
                "settings: {mode: invoice, max_levels: 100000000000000000000}",
            ),
            "settings.max_levels",
        ),
        (
            ("settings: {mode: invoice}", "settings: {mode: invoice, max_levels: 1000000}"),
            "settings.max_levels",
        ),
        (("priority: 10", "priority: 99999999999"), "policies[0].priority"),
        (("days: 20, end", "days: 99999999999, end"), "policies[0].levels[1].days"),
        (("days: 20, end", "days: 1000000, end"), "policies[0].levels[1].days"),
    ],
)
def test_out_of_range_integers_are_refused_at_their_place(
    env: dict[str, str],
    tmp_path: Path,
    session_factory: sessionmaker[Session],
    edit: tuple[str, str],
    place: str,
) -> None:
    path = tmp_path / "config.yaml"
    text = HEAD + "          value: [smb]\n"
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1]), encoding="utf-8")
    result = recoup("config", "apply", str(path))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"{place}: " in result.output and "nothing was changed" in result.output
    assert snapshot(session_factory)[:3] == (0, 0, 0)


# --- what held ------------------------------------------------------------------------------


def test_python_tags_are_refused_and_never_run(env: dict[str, str], tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "config.yaml"
    path.write_text(
        f"settings: !!python/object/apply:os.system ['touch {marker}']\n", encoding="utf-8"
    )
    line = _one_line_error(recoup("config", "apply", str(path)), path)
    assert "could not determine a constructor" in line
    assert not marker.exists()
