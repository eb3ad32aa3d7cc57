"""The front-end libraries, from npm (recoup/web/package.json, locked by package-lock.json):
`make setup` runs `npm ci --prefix recoup/web`, and the pages load them from
/static/vendor/<name>, never from a CDN: Recoup works on a machine without internet.

Only the files named here are served from node_modules. Without them (npm not run), the pages
still work: htmx and the charts are enhancements; a warning says what to run."""

from __future__ import annotations

import logging
from pathlib import Path

HERE = Path(__file__).parent
NODE_MODULES = HERE / "node_modules"
STATIC = HERE / "static"

# /static/vendor/<name> → the file in node_modules
VENDOR: dict[str, str] = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "chart.umd.js": "chart.js/dist/chart.umd.js",
}
# for the accessibility test (tests/web), not served
AXE = NODE_MODULES / "axe-core" / "axe.min.js"

logger = logging.getLogger("recoup.web")


def vendor_file(name: str) -> Path | None:
    relative = VENDOR.get(name)
    if relative is None:
        return None
    path = NODE_MODULES / relative
    return path if path.is_file() else None


def check_installed() -> None:
    missing = [name for name, relative in VENDOR.items() if not (NODE_MODULES / relative).is_file()]
    if missing:
        logger.warning(
            "the back office's scripts are not installed (%s): run `make setup` (npm ci --prefix "
            "recoup/web); the pages work without them, with no charts",
            ", ".join(missing),
        )


__all__ = ["AXE", "NODE_MODULES", "STATIC", "VENDOR", "check_installed", "vendor_file"]
