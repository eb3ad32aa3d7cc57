"""What the configuration and run pages share to read a posted form and put each problem the
services report (at a policy file's path, `levels[0].days`) beside the input it concerns."""

from __future__ import annotations

import re

from fastapi import Request
from starlette.datastructures import FormData

from recoup.core.errors import RecoupError

_LEVEL_FIELD = re.compile(r"^(levels\[\d+\]\.[a-z_]+)")


async def form_data(request: Request) -> FormData:
    """The posted form, for a plain `def` route whose fields are not known in advance (a
    policy's level rows). Starlette keeps it: the CSRF check has already read it."""
    return await request.form()


def split_list(text: str) -> list[str]:
    """`a, b c` → ["a", "b", "c"]: a list typed into one input."""
    return [part for part in re.split(r"[,\s]+", text.strip()) if part]


def top_field(path: str) -> str:
    """The input a problem's path belongs to: `customer_balance[0]` → `customer_balance`,
    `company.city` → `company`, `levels[2].actions[0]` → `levels[2].actions`, `levels` stays."""
    found = _LEVEL_FIELD.match(path)
    if found:
        return found.group(1)
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def field_errors(exc: RecoupError) -> dict[str, str]:
    """Problems by input; several on one input are joined. A problem at no field, or at a
    field the form does not have, is shown with the form's summary (`form`)."""
    errors: dict[str, str] = {}
    for error in exc.errors:
        key = top_field(error.field) if error.field else "form"
        errors[key] = f"{errors[key]}; {error.message}" if key in errors else error.message
    if not errors:  # one problem, at the error's own field if it names one
        errors[top_field(exc.field) if exc.field else "form"] = exc.message
    return errors


def number(text: str) -> int | str:
    """An integer typed into an input, or the text as typed for the reader to refuse."""
    stripped = text.strip()
    return int(stripped) if re.fullmatch(r"-?\d{1,9}", stripped) else stripped
