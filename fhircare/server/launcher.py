"""Start SEKMET (a real FHIR R4 server on FastAPI + SQLite) the way fhircare needs it.

What the launcher changes, and why:
- the simulator is off: it would move Tasks and ServiceRequests on its own after a write;
- the traffic log is off: it would store every request body (PHI) in the database;
- search parameters fhircare relies on that SEKMET lacks are added (Goal, CareTeam, ...);
- conditional create is made atomic: SEKMET checks and creates in two steps, so concurrent
  ``If-None-Exist`` creates could each create a copy; the launcher runs both steps under the
  store's transaction lock;
- data stays in memory unless a database file is given;
- an index for ``_include`` lookups is added (SEKMET's own indexes make each include a scan);
- SQLite's query planner is given fixed statistics for the search index: without any it scans every
  row of a parameter for an identifier or ``_tag`` search (the request-id checks of every workflow
  run), which made seeding grow quadratically with the caseload;
- it binds its listening socket itself before anything starts (a port already in use is a clear
  error, never a server that seems to start) and returns only once ``/metadata`` answers on it.
"""

from __future__ import annotations

import errno
import logging
import socket
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import ConfigurationError
from .tuning import (
    add_include_index,
    add_planner_statistics,
    add_search_params,
    make_conditional_create_atomic,
)

log = logging.getLogger("fhircare.server")


def _require_sekmet() -> Any:
    try:
        import sekmet.main
        import uvicorn
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigurationError(
            "the embedded server needs the 'server' extra: pip install 'fhircare[server]'"
        ) from exc
    return sekmet.main, uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def listen_on(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (0: any free port), or ConfigurationError when it is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # SO_REUSEADDR lets a restarted server take its port back from TIME_WAIT; Linux still refuses a
    # port another socket is listening on
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {reason} (another server running? choose one with --port)"
        ) from None
    return sock


class RequestCounter:
    """ASGI middleware counting FHIR requests the server received (tests and benchmarks read it)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0
        self.by_method: dict[str, int] = {}
        self._lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and str(scope.get("path", "")).startswith("/fhir"):
            with self._lock:
                self.count += 1
                method = str(scope.get("method"))
                self.by_method[method] = self.by_method.get(method, 0) + 1
        await self.app(scope, receive, send)

    def reset(self) -> None:
        with self._lock:
            self.count = 0
            self.by_method = {}


class EmbeddedServer:
    """A real FHIR R4 server in a background thread.

    >>> with EmbeddedServer() as server:
    ...     client = FhirClient(server.base_url)
    """

    def __init__(
        self, port: int | None = None, db: str | Path | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.host = host
        self._requested_port = port or 0
        self.port = port or free_port(host)
        self._socket: socket.socket | None = None
        self.db = str(db) if db else ":memory:"
        self._tmp = tempfile.TemporaryDirectory(prefix="fhircare-server-")
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.counter: RequestCounter | None = None
        self.started_in: float = 0.0
        self.app: Any = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/fhir"

    def build_app(self) -> Any:
        sekmet_main, _ = _require_sekmet()
        from sekmet.config import Settings as SekmetSettings

        add_search_params()
        settings = SekmetSettings(
            base_url=self.base_url,
            host=self.host,
            port=self.port,
            db_path=self.db,
            data_dir=self._tmp.name,
            own_private_key_path=str(Path(self._tmp.name) / "keys" / "server.pem"),
            log_inbound=False,
        )
        settings.simulator.enabled = False
        root = logging.getLogger()
        level, handlers = root.level, list(root.handlers)
        app = sekmet_main.create_app(settings)
        # SEKMET's factory configures the root logger; give the host process its logging back.
        root.setLevel(level)
        root.handlers[:] = handlers
        for noisy in ("sekmet", "uvicorn", "uvicorn.access", "uvicorn.error"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        make_conditional_create_atomic(app.state.ctx.service)
        add_include_index(app.state.ctx.store)
        add_planner_statistics(app.state.ctx.store)
        if self.db != ":memory:":
            app.state.ctx.store.reindex_all()  # a file written before may lack the added parameters
        self.app = app
        self.counter = RequestCounter(app)
        return self.counter

    def start(self, timeout: float = 30.0) -> EmbeddedServer:
        _, uvicorn = _require_sekmet()
        started = time.perf_counter()
        # bound first, so /metadata can only be answered by this server and a taken port fails here
        try:
            self._socket = listen_on(self.host, self.port)
        except ConfigurationError:
            if self._requested_port:
                raise
            self._socket = listen_on(self.host, 0)  # the free port chosen earlier was taken since
        self.port = int(self._socket.getsockname()[1])
        try:
            asgi = self.build_app()
            config = uvicorn.Config(
                asgi, host=self.host, port=self.port, log_level="warning", access_log=False, lifespan="off"
            )
            self._server = uvicorn.Server(config)
            self._thread = threading.Thread(
                target=self._server.run,
                kwargs={"sockets": [self._socket]},
                name="fhircare-embedded-server",
                daemon=True,
            )
            self._thread.start()
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.perf_counter() - started
        log.info(
            "embedded FHIR server ready", extra={"port": self.port, "seconds": round(self.started_in, 3)}
        )
        return self

    def _wait_ready(self, timeout: float) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._thread is not None and not self._thread.is_alive():
                raise ConfigurationError(
                    f"the embedded FHIR server could not start on {self.host}:{self.port}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/metadata", timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise ConfigurationError(f"the embedded FHIR server did not answer /metadata within {timeout} s")

    def serve_forever(self) -> None:
        """Block until interrupted (the CLI's ``fhircare server start``)."""
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._socket is not None:
            self._socket.close()
        self._thread = None
        self._server = None
        self._socket = None
        self._tmp.cleanup()

    def resource_counts(self) -> dict[str, int]:
        """Current (non-deleted) resources per type, read from the store (for tests)."""
        counts: dict[str, int] = self.app.state.ctx.store.counts()
        return counts

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
