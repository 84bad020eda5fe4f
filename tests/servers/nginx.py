"""Debian's nginx as a reverse proxy in front of a FHIR server, the way many deployments run one.

It passes the upstream's own ``Host`` (nginx's default ``$proxy_host``), so the server builds its
paging links with its inner address: what fhircare must re-base onto the address it was given.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

CONFIG = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    client_max_body_size 64m;
    client_body_buffer_size 64m;  # bodies stay in memory: the workers may not write the temp folders
    proxy_buffering off;
    upstream fhir {{ server {upstream}; keepalive 8; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host {upstream};
            proxy_read_timeout 60s;
        }}
    }}
}}
"""


def available() -> bool:
    return Path(NGINX).is_file()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NginxProxy:
    """``NginxProxy("127.0.0.1:8765", "/fhir")``: ``base_url`` is the proxied FHIR base."""

    def __init__(self, upstream: str, path: str) -> None:
        self.upstream = upstream
        self.path = path
        self.port = _free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="fhircare-nginx-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self, timeout: float = 15.0) -> NginxProxy:
        prefix = self._dir.name
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(CONFIG.format(prefix=prefix, port=self.port, upstream=self.upstream))
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary, config written above
            [NGINX, "-p", prefix, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = (self._process.stderr.read() if self._process.stderr else b"").decode(
                    errors="replace"
                )
                raise RuntimeError(f"nginx exited: {error[-500:]}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/metadata", timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not proxy /metadata in time")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None
        self._dir.cleanup()

    def __enter__(self) -> NginxProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
