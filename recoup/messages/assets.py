"""What a letter may load while it is printed (issue 8.2): `data:` URLs and files of Recoup's
own assets folder (`recoup/templates/`), nothing else.

WeasyPrint's default fetcher follows `file://`, `http://` and `https://` in `<img>`, `<link>`,
CSS `url()` and `<link rel="attachment">`: a letter template could attach `/etc/passwd` or the
database to the PDF, or make every render call an internal server. `AssetFetcher` refuses all
but the two allowed kinds; `to_pdf` also drops PDF attachments altogether; and
`external_references` lets `config validate` refuse a letter template that references anything
else before it is ever printed.
"""

from __future__ import annotations

import logging
import mimetypes
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ASSETS_DIR = Path(__file__).resolve().parent.parent / "templates"
BASE_URL = ASSETS_DIR.as_uri() + "/"
MAX_ASSET_BYTES = 5_000_000

logger = logging.getLogger(__name__)

_SCHEME = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9+.\-]*):")
_CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)\s]*))\s*\)""", re.I)
_CSS_IMPORT = re.compile(r"""@import\s+(?:"([^"]*)"|'([^']*)')""", re.I)
_CSS_ESCAPE = re.compile(r"\\[0-9a-fA-F]{1,6}\s?|\\.")
# Attributes through which HTML (and inline SVG) make a printer load something.
_URL_ATTRIBUTES = frozenset(
    {"src", "href", "data", "poster", "background", "srcset", "xlink:href", "action"}
)
_LINK_TAGS = frozenset({"a", "area"})  # their href is a link to click, not a resource


def allowed_reference(url: str) -> bool:
    """A `data:` URL, a fragment, or a plain relative path (resolved in the assets folder)."""
    text = url.strip()
    if not text or text.startswith("#"):
        return True
    match = _SCHEME.match(text)
    if match:
        return match.group(1).lower() == "data"
    if text.startswith(("/", "\\")) or "\\" in text:
        return False
    return ".." not in unquote(text).split("/")


def _is_asset(path: Path) -> bool:
    try:
        resolved = path.resolve(strict=True)  # symlinks followed, then checked
    except (OSError, RuntimeError):
        return False
    return resolved.is_file() and resolved.is_relative_to(ASSETS_DIR)


def _css_references(css: str) -> list[str]:
    # CSS escapes (`u\72l(`) are decoded as the CSS parser would before looking.
    css = _CSS_ESCAPE.sub(
        lambda m: (
            chr(int(m.group(0)[1:].strip(), 16))
            if re.fullmatch(r"\\[0-9a-fA-F]{1,6}\s?", m.group(0))
            else m.group(0)[1:]
        ),
        css,
    )
    found = []
    for pattern in (_CSS_URL, _CSS_IMPORT):
        for match in pattern.finditer(css):
            found.append(next(group for group in match.groups() if group is not None))
    return found


class _ReferenceScanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value or "" for name, value in attrs}
        rel = values.get("rel", "").lower().split()
        if "attachment" in rel:
            self.problems.append(f'<{tag} rel="attachment">: attachments are not allowed')
        for name, value in values.items():
            if name == "style":
                self._css(value, f"<{tag} style>")
            elif name in _URL_ATTRIBUTES and not (tag in _LINK_TAGS and name == "href"):
                urls = [part.split()[0] for part in value.split(",") if part.strip()]
                for url in urls if name == "srcset" else [value]:
                    if not allowed_reference(url):
                        self.problems.append(f"<{tag} {name}={url!r}>: {_why(url)}")
        self._in_style = tag == "style"

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._css(data, "<style>")

    def _css(self, css: str, where: str) -> None:
        for url in _css_references(css):
            if not allowed_reference(url):
                self.problems.append(f"{where} url({url!r}): {_why(url)}")


def _why(url: str) -> str:
    return (
        "a letter may only load data: URLs and files of Recoup's assets folder, "
        f"not {url.strip()[:80]!r}"
    )


def external_references(markup: str) -> list[str]:
    """What in a letter's HTML would load something other than data: URLs and assets."""
    scanner = _ReferenceScanner()
    scanner.feed(markup)
    scanner.close()
    return scanner.problems


def asset_fetcher() -> Any:
    """A WeasyPrint URL fetcher for `data:` URLs and the assets folder only."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse  # type: ignore[import-untyped]

    class AssetFetcher(URLFetcher):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(timeout=1, allowed_protocols=("data", "file"), allow_redirects=False)
            self.refused: list[str] = []

        def fetch(self, url: str, headers: Any = None) -> Any:
            scheme = url.split(":", 1)[0].lower()
            if scheme == "data":
                return super().fetch(url, headers)
            if scheme == "file":
                parts = urlsplit(url)
                path = Path(unquote(parts.path))
                if (
                    parts.netloc in ("", "localhost")
                    and _is_asset(path)
                    and path.stat().st_size <= MAX_ASSET_BYTES
                ):
                    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                    return URLFetcherResponse(
                        url, path.read_bytes(), headers={"Content-Type": kind}
                    )
            self.refused.append(url)
            logger.warning("letter: refused to load %s", url[:200])
            raise ValueError(f"refused: {url[:200]} (only data: URLs and Recoup's assets)")

    return AssetFetcher()


__all__ = [
    "ASSETS_DIR",
    "BASE_URL",
    "allowed_reference",
    "asset_fetcher",
    "external_references",
]
