"""Will each template of a configuration render? (issue 9.7, 8.2, 8.4)

Every template is compiled and rendered, within the run's rendering budgets, against a sample
context of what it will really see (`recoup.messages.render.sample_variables`): the settings'
mode (invoice mode has `invoice`, customer mode only `invoices`) and, for a template a reminder
level sends, a reminder's (one invoice, no plan). Undefined variables and fields are errors, as
they are at run time. A letter's rendered HTML may only reference data: URLs and Recoup's
assets. Each problem is reported at the template's place: `templates[3].body: line 2: …`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jinja2 import TemplateSyntaxError
from jinja2.exceptions import TemplateAssertionError
from jinja2.sandbox import SandboxedEnvironment

from recoup.domain.enums import Channel, Mode
from recoup.domain.policy import Config, Template
from recoup.domain.validation import ConfigIssue
from recoup.messages.assets import external_references
from recoup.messages.render import (
    TemplateError,
    compile_template,
    looks_like_html,
    render_string,
    sample_variables,
)

_HIDDEN = ("locale",)  # set by Recoup for the filters, not a documented variable


_SYNTAX = SandboxedEnvironment()


def template_syntax(source: str) -> str | None:
    """The syntax error of a template's text, or None: what `validate_config` reports at the
    template's subject or body (the domain does not know the template engine)."""
    try:
        _SYNTAX.parse(source)
    except TemplateSyntaxError as exc:
        return f"template error on line {exc.lineno}: {exc}"
    return None


def _contexts(config: Config, code: str) -> list[bool]:
    """Whether template `code` is sent by reminder levels, by other levels, or both (False
    first: a template no level uses yet is checked as a plan's message)."""
    actions = {
        action.code
        for action in config.actions
        if code in (action.params.get("template"), action.params.get("letter_template"))
    }
    used: set[bool] = set()
    for policy in config.policies:
        for level in policy.levels:
            if actions.intersection(level.actions):
                used.add(level.reminder)
    return sorted(used) or [False]


def _hint(reason: str, variables: dict[str, Any], reminder: bool, mode: Mode) -> str:
    if reason.endswith("is undefined"):
        names = ", ".join(name for name in sorted(variables) if name not in _HIDDEN)
        return f"{reason} (templates see: {names})"
    if "'None'" in reason or "NoneType" in reason:
        if reminder:
            return f"{reason} (a reminder level's message has no plan)"
        if mode is Mode.customer:
            return f"{reason} (in customer mode there is no invoice, only invoices)"
    return reason


def check_template(template: Template, path: str, config: Config) -> list[ConfigIssue]:
    """The problems of one template, each at `path.subject` or `path.body`."""
    mode = config.settings.mode
    found: dict[tuple[str, str], None] = {}
    for reminder in _contexts(config, template.code):
        variables = sample_variables(
            mode=mode.value,
            reminder=reminder,
            company=config.settings.company,
            language=template.language or "en",
        )
        parts: Iterable[tuple[str, str | None, bool]] = (
            ("subject", template.subject, False),
            ("body", template.body, looks_like_html(template.body)),
        )
        for part, source, autoescape in parts:
            if not source:
                continue
            try:
                compile_template(source, autoescape)
            except TemplateAssertionError:
                pass  # an unknown filter or test: render_string reports it with its line
            except TemplateSyntaxError:
                continue  # template_syntax reports syntax errors (through the validator)
            try:
                text = render_string(
                    source, variables, name=f"{template.code} {part}", autoescape=autoescape
                )
            except TemplateError as exc:
                where = f"line {exc.line}: " if exc.line is not None else ""
                message = where + _hint(exc.reason, variables, reminder, mode)
                found[(f"{path}.{part}", message)] = None
                continue
            if template.channel is Channel.letter and part == "body" and autoescape:
                for problem in external_references(text):
                    found[(f"{path}.body", problem)] = None
    return [ConfigIssue(where, message) for where, message in found]


def check_templates(config: Config, broken: frozenset[str] = frozenset()) -> list[ConfigIssue]:
    """The problems of every template the parser did not already find broken."""
    issues: list[ConfigIssue] = []
    for index, template in enumerate(config.templates):
        if f"template:{template.code}" in broken or "settings" in broken:
            continue
        issues += check_template(template, f"templates[{index}]", config)
    return issues


__all__ = ["check_template", "check_templates", "template_syntax"]
