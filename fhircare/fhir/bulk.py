"""FHIR Bulk Data Access ``$export``: kick-off, status polling, and NDJSON read line by line.

An export is a job on the server: the kick-off (``Prefer: respond-async``) answers 202 with the address
of a status endpoint; polling it answers 202 (with ``Retry-After``, often ``X-Progress``) until the
files are written, then 200 with a manifest listing one NDJSON file per resource type. Files are read
through the client's one session as a stream of lines, so a whole-caseload export never sits in memory.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal

from ..errors import FhirServerError, TransientError

if TYPE_CHECKING:
    from .client import FhirClient

log = logging.getLogger("fhircare.fhir.bulk")

Level = Literal["system", "patient", "group"]
# where each level of export is declared in a CapabilityStatement: rest.operation, or the resource's
OPERATION_HOME: dict[str, str | None] = {"system": None, "patient": "Patient", "group": "Group"}
NDJSON = "application/fhir+ndjson"
DEFAULT_WAIT = 1.0  # seconds between polls when the server sends no Retry-After
MAX_WAIT = 60.0  # a Retry-After longer than this is clamped (a stuck job must not hang the CLI)


@dataclass(frozen=True)
class ExportFile:
    """One NDJSON file of a finished export."""

    type: str
    url: str
    count: int | None = None


@dataclass(frozen=True)
class ExportEvent:
    """What an export is doing, for a progress display: ``kicked-off``, ``waiting``, ``ready``, ``resource``."""

    kind: str
    progress: str = ""
    waited: float = 0.0
    files: tuple[ExportFile, ...] = ()


Listener = Callable[[ExportEvent], None]


def _ignore(event: ExportEvent) -> None:
    return None


def export_offered(client: FhirClient, level: Level = "system") -> bool:
    """True when the server's CapabilityStatement declares ``$export`` at this level."""
    statement = client.capabilities().statement
    rest: dict[str, Any] = next((r for r in statement.get("rest") or [] if r.get("mode") == "server"), {})
    home = OPERATION_HOME[level]
    if home is None:
        operations = rest.get("operation") or []
    else:
        resource: dict[str, Any] = next((r for r in rest.get("resource") or [] if r.get("type") == home), {})
        operations = resource.get("operation") or []
    return any(_is_export(op) for op in operations if isinstance(op, dict))


def _is_export(operation: dict[str, Any]) -> bool:
    name = str(operation.get("name", "")).lstrip("$")
    definition = str(operation.get("definition", ""))
    return name == "export" or definition.rsplit("/", 1)[-1] in ("export", "Patient-export", "Group-export")


@dataclass
class ExportJob:
    """A kicked-off export: ``wait()`` for its manifest, then ``resources()`` to read it, ``delete()`` after."""

    client: FhirClient
    status_url: str
    sleep: Callable[[float], None] = time.sleep
    files: list[ExportFile] = field(default_factory=list)
    errors: list[ExportFile] = field(default_factory=list)

    def wait(self, timeout: float = 3600.0, listener: Listener = _ignore) -> list[ExportFile]:
        """Poll the status endpoint, honouring ``Retry-After``, until the manifest is there."""
        waited = 0.0
        while True:
            response = self.client.request("GET", self.status_url, headers={"Accept": "application/json"})
            if response.status_code == 200:
                return self._read_manifest(response.json(), listener)
            pause = retry_after(response.headers.get("Retry-After"))
            if waited + pause > timeout:
                raise TransientError(f"the export did not finish within {timeout:.0f} s")
            listener(ExportEvent("waiting", response.headers.get("X-Progress", ""), waited))
            self.sleep(pause)
            waited += pause

    def _read_manifest(self, manifest: Any, listener: Listener) -> list[ExportFile]:
        if not isinstance(manifest, dict) or not isinstance(manifest.get("output"), list):
            raise FhirServerError("the export finished without a manifest listing its output")
        self.files = [_file(item) for item in manifest["output"]]
        self.errors = [_file(item) for item in manifest.get("error") or []]
        if self.errors:
            log.info("bulk export reported issues", extra={"files": len(self.errors)})
        listener(ExportEvent("ready", files=tuple(self.files)))
        return self.files

    def resources(
        self, types: Iterable[str] | None = None, listener: Listener = _ignore
    ) -> Iterator[dict[str, Any]]:
        """Every exported resource (of ``types``, if given), one NDJSON line at a time."""
        wanted = set(types) if types is not None else None
        for item in self.files:
            if wanted is not None and item.type not in wanted:
                continue
            url = item.url if "://" in item.url else self.client.url(item.url)
            if not self.client.owns(url):
                raise FhirServerError(
                    "an export file lies outside the configured FHIR base; not following it"
                )
            for line in self.client.stream_lines(url, headers={"Accept": NDJSON}):
                try:
                    resource = json.loads(line)
                except ValueError:
                    raise FhirServerError(
                        f"the {item.type} export file holds a line that is not JSON"
                    ) from None
                listener(ExportEvent("resource"))
                yield resource

    def delete(self) -> None:
        """Tell the server the files are no longer needed (a server may refuse; that is not an error)."""
        try:
            self.client.request("DELETE", self.status_url)
        except FhirServerError as exc:
            log.info("bulk export cleanup refused", extra={"status": exc.http_status})


def _file(item: Any) -> ExportFile:
    if not isinstance(item, dict) or not item.get("url"):
        raise FhirServerError("the export manifest lists a file without a url")
    count = item.get("count")
    return ExportFile(str(item.get("type", "")), str(item["url"]), count if isinstance(count, int) else None)


def retry_after(value: str | None, now: datetime | None = None) -> float:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), clamped to [0, MAX_WAIT]."""
    if not value:
        return DEFAULT_WAIT
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return DEFAULT_WAIT
        # an HTTP date is the server's wall clock: compared with this machine's, not fhircare.clock's
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return min(max(seconds, 0.0), MAX_WAIT)


def kick_off(
    client: FhirClient,
    *,
    types: Iterable[str] = (),
    since: str | None = None,
    group: str | None = None,
    level: Level | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ExportJob:
    """Start an export: system-level by default, of one Group's patients with ``group="Group/id"``
    (or ``level="patient"`` for every patient's compartment); ``types`` is ``_type``, ``since`` ``_since``."""
    if group:
        path = f"{group if group.startswith('Group/') else 'Group/' + group}/$export"
    elif level == "patient":
        path = "Patient/$export"
    else:
        path = "$export"
    params: list[tuple[str, str]] = []
    type_list = ",".join(types)
    if type_list:
        params.append(("_type", type_list))
    if since:
        params.append(("_since", since))
    response = client.request(
        "GET", path, params=params, headers={"Prefer": "respond-async", "Accept": "application/fhir+json"}
    )
    location = response.headers.get("Content-Location")
    if response.status_code != 202 or not location:
        raise FhirServerError(
            f"$export answered {response.status_code} without a status location (is it asynchronous?)"
        )
    log.info("bulk export started", extra={"types": type_list or "(all)"})
    return ExportJob(client, location, sleep=sleep)


# answers to a kick-off that mean "not here" (so a caller may page instead), not "something broke"
UNSUPPORTED = (400, 404, 405, 406, 501)


def open_export(
    client: FhirClient,
    *,
    types: Iterable[str] = (),
    since: str | None = None,
    group: str | None = None,
    listener: Listener | None = None,
    timeout: float = 3600.0,
) -> Iterator[dict[str, Any]] | None:
    """Kick an export off now and return the stream of its resources, or None when the server does not
    offer ``$export`` at that level (or refuses this one as unsupported): the caller pages instead."""
    if not export_offered(client, "group" if group else "system"):
        return None
    try:  # export() kicks off at once (only the download is lazy): a refusal surfaces here
        return export(client, types=types, since=since, group=group, listener=listener, timeout=timeout)
    except FhirServerError as exc:
        if exc.http_status in UNSUPPORTED:
            log.info("bulk export refused; paging instead", extra={"status": exc.http_status})
            return None
        raise


def export(
    client: FhirClient,
    *,
    types: Iterable[str] = (),
    since: str | None = None,
    group: str | None = None,
    listener: Listener | None = None,
    timeout: float = 3600.0,
) -> Iterator[dict[str, Any]]:
    """Kick off, wait, and yield every exported resource; the server's files are deleted afterwards."""
    types = list(types)
    job = kick_off(client, types=types, since=since, group=group)
    listener = listener or _ignore
    listener(ExportEvent("kicked-off"))
    return _drain(job, types, listener, timeout)


def _drain(job: ExportJob, types: list[str], listener: Listener, timeout: float) -> Iterator[dict[str, Any]]:
    try:
        job.wait(timeout, listener)
        yield from job.resources(types or None, listener)
    finally:
        job.delete()
