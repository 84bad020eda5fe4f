"""``fhircare serve``: the sidecar for development (production: gunicorn, see README)."""

from __future__ import annotations

import click

from .context import Context, pass_context

#: seconds a connection to the development server may stay silent (headers or body) before it is
#: dropped: a client that announces a body and never sends it holds a thread no longer than this
SOCKET_TIMEOUT = 15


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (loopback by default).")
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--embedded", is_flag=True, help="Also start an embedded FHIR server and use it.")
@pass_context
def serve_command(obj: Context, host: str, port: int, embedded: bool) -> None:
    """Run the sidecar web service (development server)."""
    from dataclasses import replace

    from werkzeug.serving import WSGIRequestHandler

    from ..web import create_app

    class Handler(WSGIRequestHandler):
        timeout = SOCKET_TIMEOUT  # socketserver.StreamRequestHandler sets it on every connection

    settings = obj.settings
    server = None
    if embedded:
        from ..server import EmbeddedServer

        server = EmbeddedServer().start()
        settings = replace(settings, base_url=server.base_url)
        click.echo(f"Embedded FHIR server at {server.base_url}")
    app = create_app(settings, host=host)
    click.echo(
        f"fhircare sidecar on http://{host}:{port}/ (FHIR: {settings.base_url}, auth: {settings.auth_mode})"
    )
    try:
        app.run(host=host, port=port, debug=False, use_reloader=False, threaded=True, request_handler=Handler)
    finally:
        if server is not None:
            server.stop()


COMMANDS = [serve_command]
