"""Launcher for the in-memory Medplum FHIR R4 server (``tests/servers/medplum/server.mjs``).

The server is Medplum's own FHIR router (``@medplum/fhir-router``) with its in-memory repository, behind a
thin HTTP layer; it runs in a Node 20 child process on a loopback port chosen by the OS.

>>> with MedplumServer() as server:
...     client = FhirClient(server.base_url)
...     start = server.counter.count
...     ...
...     sent = server.counter.count - start

Only the standard library speaks HTTP here (the project keeps ``requests`` inside ``fhircare.fhir``).
"""

from __future__ import annotations

import collections
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

SERVER_DIR = Path(__file__).resolve().parent / "medplum"
SERVER_SCRIPT = SERVER_DIR / "server.mjs"
FHIR_BASE_PATH = "/fhir/R4"
START_TIMEOUT = 60.0
NPM_CI_TIMEOUT = 600.0
_STDERR_TAIL_LINES = 40


class MedplumServerError(RuntimeError):
    """The Medplum server could not be installed, started or asked something."""


def _http_json(method: str, url: str, timeout: float = 10.0) -> Any:
    """One request to the server's admin or metadata endpoints; the parsed JSON answer."""
    request = urllib.request.Request(url, method=method, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # loopback URL built here
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise MedplumServerError(f"{method} {url} answered {exc.code}: {exc.read()[:500]!r}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise MedplumServerError(f"{method} {url} failed: {exc}") from None


def _node_executable() -> str:
    node = os.environ.get("FHIRCARE_NODE") or shutil.which("node")
    if not node:
        raise MedplumServerError(
            "Node.js (v20 or later) is needed for the Medplum test server: no `node` on PATH"
        )
    return node


def ensure_node_modules(server_dir: Path = SERVER_DIR) -> None:
    """Install the server's pinned npm packages (``npm ci``) unless they are there already.

    A file lock keeps concurrent test processes (pytest-xdist workers, parallel runs) from running
    ``npm ci`` over each other.
    """
    marker = server_dir / "node_modules" / "@medplum" / "fhir-router" / "package.json"
    if marker.exists():
        return
    npm = shutil.which("npm")
    if not npm:
        raise MedplumServerError(f"{marker.parent} is missing and there is no `npm` to install it")
    lock_path = Path(tempfile.gettempdir()) / "fhircare-medplum-npm-ci.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if marker.exists():  # another process installed them while this one waited
                return
            result = subprocess.run(
                [npm, "ci", "--prefix", str(server_dir), "--no-audit", "--no-fund"],
                capture_output=True,
                text=True,
                timeout=NPM_CI_TIMEOUT,
                check=False,
            )
            if result.returncode != 0 or not marker.exists():
                tail = "\n".join((result.stdout + result.stderr).splitlines()[-_STDERR_TAIL_LINES:])
                raise MedplumServerError(
                    f"npm ci --prefix {server_dir} failed ({result.returncode}):\n{tail}"
                )
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class RequestCounter:
    """Live count of the FHIR requests the server has received since it started."""

    def __init__(self, admin_url: str) -> None:
        self._url = f"{admin_url}/__admin/count"

    @property
    def count(self) -> int:
        """Requests under ``/fhir/R4`` so far (admin requests are not counted)."""
        return int(_http_json("GET", self._url)["count"])


class MedplumServer:
    """Medplum's FHIR router, in memory, in a Node child process on ``127.0.0.1``.

    ``transaction_as_batch=True`` starts it the way Medplum serves a project without the
    ``transaction-bundles`` feature: a transaction Bundle is processed as a batch (HTTP 200,
    ``transaction-response`` with per-entry statuses, nothing rolled back).

    ``projects`` (``{"project-batch": "batch", "project-atomic": "atomic"}``) models several Medplum
    projects on one base: a request whose bearer token names a project gets that project's transaction
    mode; any other request gets the server's own.

    ``quota_points_per_minute`` turns on a points quota modelled on the full Medplum server's
    (``medplum/quota.mjs``: a read costs 1 point, a history 10, a search 20, a write 100), over a
    window of ``quota_window_s`` seconds (60 on the full server; short in tests): a batch over it is
    answered HTTP 200 with ``429`` entries, a request over it HTTP 429 with ``Retry-After``.
    :meth:`set_quota` changes it while the server runs.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        port: int | None = None,
        transaction_as_batch: bool = False,
        projects: dict[str, str] | None = None,
        quota_points_per_minute: int | None = None,
        quota_window_s: float = 60.0,
    ) -> None:
        self.port = port
        self.quota_points = quota_points_per_minute
        self.quota_window_s = quota_window_s
        self.projects = dict(projects or {})
        self._requested_port = port
        self.transaction_as_batch = transaction_as_batch
        self.started_in: float = 0.0
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self._stdout_lines: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL_LINES)
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    # ---- addresses ---------------------------------------------------------------------------

    @property
    def admin_url(self) -> str:
        """Root of the server (the admin endpoints live under ``/__admin``)."""
        if self.port is None:
            raise MedplumServerError("the Medplum server has not been started")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The FHIR base, ``http://127.0.0.1:<port>/fhir/R4``."""
        return f"{self.admin_url}{FHIR_BASE_PATH}"

    @property
    def counter(self) -> RequestCounter:
        """Reads the server's FHIR request count live: ``server.counter.count``."""
        return RequestCounter(self.admin_url)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> MedplumServer:
        """Start the server (installing its npm packages first if needed) and wait until it answers."""
        if self.running:
            return self
        ensure_node_modules()
        self.port = self._requested_port
        command = [
            _node_executable(),
            str(SERVER_SCRIPT),
            "--port",
            str(self._requested_port or 0),
            "--exit-on-stdin-close",
        ]
        if self.transaction_as_batch:
            command.append("--transaction-as-batch")
        for token, mode in self.projects.items():
            command += ["--project", f"{token}={mode}"]
        if self.quota_points is not None:
            command += ["--quota-points", str(self.quota_points)]
            command += ["--quota-window-ms", str(round(self.quota_window_s * 1000))]
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PORT", "MEDPLUM_PORT", "MEDPLUM_TRANSACTION_AS_BATCH", "MEDPLUM_PROJECTS")
            and not k.startswith("MEDPLUM_QUOTA_")
        }
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8", prefix="medplum-stderr-")
        self._ready.clear()
        self._stdout_lines.clear()
        started = time.monotonic()
        self._process = subprocess.Popen(
            command,
            cwd=SERVER_DIR,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
        )
        self._reader = threading.Thread(target=self._read_stdout, name="medplum-stdout", daemon=True)
        self._reader.start()
        try:
            self._wait_until_ready(started + START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - started
        return self

    def _read_stdout(self) -> None:
        process = self._process
        if process is None or process.stdout is None:
            return
        for line in process.stdout:
            line = line.rstrip("\n")
            self._stdout_lines.append(line)
            parts = line.split()
            if len(parts) == 2 and parts[0] == "ready" and parts[1].isdigit():
                self.port = int(parts[1])
                self._ready.set()

    def _wait_until_ready(self, deadline: float) -> None:
        process = self._process
        assert process is not None
        while time.monotonic() < deadline:
            if self._ready.wait(timeout=0.1):
                break
            if process.poll() is not None:
                raise MedplumServerError(
                    f"the Medplum server exited with code {process.returncode} before it was ready\n"
                    + self._output_tail()
                )
        else:
            raise MedplumServerError(
                f"the Medplum server did not print 'ready' within {START_TIMEOUT:.0f} s\n"
                + self._output_tail()
            )
        # It listens; it must also answer as a FHIR server.
        while True:
            try:
                statement = _http_json("GET", f"{self.base_url}/metadata", timeout=5.0)
            except MedplumServerError as exc:
                if time.monotonic() >= deadline or process.poll() is not None:
                    raise MedplumServerError(
                        f"the Medplum server does not answer: {exc}\n" + self._output_tail()
                    ) from None
                time.sleep(0.1)
                continue
            if not isinstance(statement, dict) or statement.get("resourceType") != "CapabilityStatement":
                raise MedplumServerError(f"{self.base_url}/metadata is not a CapabilityStatement")
            return

    def _output_tail(self) -> str:
        stderr = ""
        if self._stderr is not None:
            try:
                self._stderr.flush()
                self._stderr.seek(0)
                stderr = "\n".join(self._stderr.read().splitlines()[-_STDERR_TAIL_LINES:])
            except (OSError, ValueError):
                stderr = "(stderr unavailable)"
        stdout = "\n".join(self._stdout_lines)
        return f"--- node stderr (tail) ---\n{stderr or '(empty)'}\n--- node stdout (tail) ---\n{stdout or '(empty)'}"

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and release its pipes."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> MedplumServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- admin -------------------------------------------------------------------------------

    def resource_counts(self) -> dict[str, int]:
        """Current (not deleted) resources per type, e.g. ``{"Patient": 3}``; types with none are absent."""
        counts = _http_json("GET", f"{self.admin_url}/__admin/resource-counts")
        return {str(k): int(v) for k, v in counts.items()}

    def reset(self) -> None:
        """Delete every resource and all history (the request count goes on)."""
        _http_json("POST", f"{self.admin_url}/__admin/reset")

    def quota(self) -> dict[str, Any]:
        """The points quota's state: ``points``, ``windowMs``, ``consumed``, ``remaining``,
        ``msBeforeNext``, ``refused`` (interactions refused so far); ``{"points": None}`` when off."""
        return dict(_http_json("GET", f"{self.admin_url}/__admin/quota"))

    def set_quota(self, points: int | None, window_s: float | None = None) -> dict[str, Any]:
        """Set the points quota (None: off) and start a fresh window."""
        if points is None:
            return dict(_http_json("POST", f"{self.admin_url}/__admin/quota?off=1"))
        query = f"points={points}" + (f"&window_ms={round(window_s * 1000)}" if window_s else "")
        return dict(_http_json("POST", f"{self.admin_url}/__admin/quota?{query}"))

    def __repr__(self) -> str:
        mode = ", transaction_as_batch=True" if self.transaction_as_batch else ""
        return f"MedplumServer(port={self.port}{mode})"
