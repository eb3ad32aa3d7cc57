"""`recoup serve`: the REST API (recoup.api) and the back office's pages (recoup.web, which the
API's app mounts at `/`) with uvicorn. The app is named by its import string,
so that the CLI does not import the API (two sibling faces) and each worker builds its own."""

from __future__ import annotations

import socket

import typer

from recoup.cli.common import handle_errors

APP = "recoup.api.app:create_served_app"


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
    run_server(APP, host=host, port=port, workers=workers)


def run_server(
    app: str,
    *,
    host: str,
    port: int,
    workers: int = 1,
    access_log: bool = True,
    log_level: str | None = None,
) -> None:
    """uvicorn serving the app factory `app` (an import string) with `workers` processes."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        app,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level=log_level,
    )
    if workers == 1:
        uvicorn.Server(config).run()
        return
    Multiprocess(config, sockets=[tcp_listener(config.bind_socket())]).run()


def tcp_listener(listener: socket.socket) -> socket.socket:
    """The listening socket the workers share, marked as TCP. uvicorn binds it with protocol 0,
    and asyncio turns Nagle off (TCP_NODELAY) only on connections whose socket says TCP: with
    Nagle on, every keep-alive answer after the first waits ~40 ms on the client's delayed ACK
    (uvicorn issue #3149)."""
    if listener.family not in (socket.AF_INET, socket.AF_INET6) or listener.proto:
        return listener
    tcp = socket.socket(listener.family, listener.type, socket.IPPROTO_TCP, listener.detach())
    tcp.set_inheritable(True)
    return tcp
