"""`recoup serve`: the REST API (recoup.api) and the back office's pages (recoup.web, which the
API's app mounts at `/`) with uvicorn. The app is named by its import string,
so that the CLI does not import the API (two sibling faces) and each worker builds its own."""

from __future__ import annotations

import typer

from recoup.cli.common import handle_errors

APP = "recoup.api.app:create_app"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


@handle_errors
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes."),
) -> None:
    """Serve the back office at / (users come from `recoup user create`) and the REST API
    under /api/v1 (documentation at /api/v1/docs; keys from `recoup apikey create`)."""
    import uvicorn

    uvicorn.run(APP, factory=True, host=host, port=port, workers=workers)
