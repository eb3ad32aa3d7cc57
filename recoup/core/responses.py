"""What the faces answer that is not a schema: a PDF, as a download or shown in the browser."""

from __future__ import annotations

from typing import Literal

from starlette.responses import Response


def pdf_response(
    content: bytes, name: str, *, disposition: Literal["attachment", "inline"] = "attachment"
) -> Response:
    """`content` as application/pdf named `name`; the name is made safe for a quoted header
    value (a letter's file name comes from a template code). Never cached: it is a customer's."""
    safe = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return Response(
        content,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'{disposition}; filename="{safe}"',
            "Cache-Control": "private, no-store",
        },
    )


__all__ = ["pdf_response"]
