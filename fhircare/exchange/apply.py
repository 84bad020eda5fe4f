"""Replay a partner's Task versions onto ours: one transaction per remote version, with If-Match and a
Provenance naming the remote version; field ownership and terminal states enforced."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from typing import Any

from ..care.task_states import TERMINAL
from ..fhir.transport import etag_version, weak_etag
from .conflicts import conflict_task_entry
from .context import Exchange, instant, is_instant, stamp
from .copies import Refused, copied_outputs, output_references, prefetchable, remote_url
from .forward import mirror_entries
from .links import Conflict, Link, field_digests, read_link, updated_of, version_of, with_ignored, write_link
from .partners import Partner
from .send import OWNED, remote_task

log = logging.getLogger("fhircare.exchange")

#: the Gravity SDOH CC referral Task statuses (received and ready are excluded by the guide)
REFERRAL_STATUSES = frozenset(
    {"requested", "accepted", "rejected", "in-progress", "on-hold", "failed", "completed", "cancelled"}
)
#: requester-owned fields compared on every remote version (the performer owns status/statusReason/output)


@dataclass
class Applied:
    """What replaying one remote Task did."""

    applied: int = 0
    conflicts: int = 0
    ignored: int = 0


def ownership_breaches(
    exchange: Exchange, ours: dict[str, Any], link: Link, version: dict[str, Any]
) -> list[str]:
    """Requester-owned fields the partner changed since it stored our Task (names only: no values, no
    PHI). Compared by digest against the link (what the partner stored when we sent it), so our own
    later edits are not taken for the partner's; a link without digests compares with ours."""
    if link.owned:
        now = field_digests(version, OWNED)
        return [d.split("=")[0] for d, before in zip(now, link.owned, strict=False) if d != before]
    expected = remote_task(exchange, ours)
    return [n for n in OWNED if n in expected and version.get(n) != expected.get(n)]


def remote_versions(
    exchange: Exchange, partner: Partner, latest: dict[str, Any], link: Link
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The remote versions not yet applied, oldest first, and the outputs they point at (one batch)."""
    remote = exchange.remote(partner.name)
    base = remote.base_url
    vid, old = version_of(latest), link.version
    consecutive = bool(old) and vid.isdigit() and old.isdigit() and int(vid) == int(old or 0) + 1  # type: ignore[union-attr]
    urls = [] if consecutive else [f"Task/{latest['id']}/_history?_count=1000"]
    outputs = [remote_url(r, base) for r in output_references(latest)]
    wanted = prefetchable(outputs, base)
    urls += [u[len(base) + 1 :] for u in wanted]
    fetched: dict[str, dict[str, Any]] = {}
    versions = [latest]
    if urls:
        entries = remote.read_batch(urls)
        if not consecutive:
            bundle = entries[0].get("resource") or {}
            history = [  # only this Task's versions, whatever else the partner put in the answer
                e["resource"]
                for e in bundle.get("entry") or []
                if isinstance(e.get("resource"), dict)
                and e["resource"].get("resourceType") == "Task"
                and e["resource"].get("id") == latest["id"]
            ]
            if history:
                versions = history
            entries = entries[1:]
        for url, entry in zip(wanted, entries, strict=False):
            resource = entry.get("resource")
            if (
                isinstance(resource, dict)
                and resource.get("id")
                and resource.get("resourceType") != "OperationOutcome"
            ):
                fetched[url] = resource
    floor = instant(link.updated) if link.updated else None
    versions = [v for v in versions if is_instant(updated_of(v))]  # one that does not order is not applied
    versions = [
        v for v in versions if version_of(v) != old and (floor is None or instant(updated_of(v)) > floor)
    ]
    versions.sort(key=lambda v: instant(updated_of(v)))
    return versions, fetched


def provenance_from(
    partner: Partner, task_ref: str, what: str, target_fullurl: str | None = None
) -> dict[str, Any]:
    return {
        "resourceType": "Provenance",
        "target": [{"reference": target_fullurl or task_ref}],
        "recorded": stamp(),
        "activity": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "UPDATE"}]
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "author",
                        }
                    ]
                },
                "who": {"reference": partner.organization},
                "onBehalfOf": {"reference": partner.organization},
            }
        ],
        "entity": [{"role": "source", "what": {"reference": what}}],
    }


def write_version(
    exchange: Exchange, ours: dict[str, Any], extra: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Our Task (and what goes with it) in one transaction, If-Match on the version we read."""
    entries = [
        {
            "resource": ours,
            "request": {"method": "PUT", "url": f"Task/{ours['id']}", "ifMatch": weak_etag(version_of(ours))},
        },
        *(extra or []),
    ]
    answer = exchange.local.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    first = (answer.get("entry") or [{}])[0].get("response") or {}
    version = etag_version(first.get("etag")) or ""
    return {**ours, "meta": {**(ours.get("meta") or {}), "versionId": version}}


def _link_only(exchange: Exchange, ours: dict[str, Any], link: Link) -> dict[str, Any]:
    return write_version(exchange, write_link(ours, link, exchange.namespace_base))


def apply_version(
    exchange: Exchange,
    partner: Partner,
    ours: dict[str, Any],
    link: Link,
    version: dict[str, Any],
    fetched: dict[str, dict[str, Any]],
    known: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], Link, str]:
    """Apply one remote version; returns our Task as written, its link, and what happened
    (applied | unchanged | conflict | ignored). Raises PreconditionFailed when our Task moved meanwhile."""
    vid, status = version_of(version), str(version.get("status"))
    seen = replace(
        link, version=vid, updated=updated_of(version), synced_at=stamp(), remote_status=status[:40]
    )
    breaches = ownership_breaches(exchange, ours, link, version)
    for name in breaches:
        log.warning(
            "partner changed a requester-owned field; not applied",
            extra={"partner": partner.name, "field": name},
        )
        seen = with_ignored(seen, f"v{vid}: {name} is requester-owned")
    if status not in REFERRAL_STATUSES:
        log.warning(
            "partner status outside the referral value set; not applied", extra={"partner": partner.name}
        )
        seen = with_ignored(seen, f"v{vid}: status {status[:20]!r} is not a referral status")
        return _link_only(exchange, ours, seen), seen, "ignored"
    local_status = str(ours.get("status"))
    clash = (local_status in TERMINAL and status != local_status) or (
        link.cancel_reason is not None and status in TERMINAL and status != "cancelled"
    )
    if clash:
        seen = replace(seen, conflict=Conflict(local_status, version_of(ours), status, vid))
        log.warning(
            "conflict with the partner",
            extra={"partner": partner.name, "local": local_status, "remote": status},
        )
        assert seen.conflict is not None
        entry = conflict_task_entry(exchange, ours, partner.name, seen.conflict)
        written = write_version(exchange, write_link(ours, seen, exchange.namespace_base), [entry])
        return written, seen, "conflict"
    outputs = copied_outputs(exchange, partner, version, fetched, ours)
    if isinstance(outputs, Refused):
        log.warning("partner output not applied", extra={"partner": partner.name, "why": outputs.why})
        seen = with_ignored(seen, f"v{vid}: {outputs.why}")
        return _link_only(exchange, ours, seen), seen, "ignored"
    target_status = local_status if status == "requested" else status
    changed = (
        target_status != local_status
        or outputs != (ours.get("output") or [])
        or (version.get("statusReason") != ours.get("statusReason") and status != "requested")
    )
    if not changed:
        return _link_only(exchange, ours, seen), seen, "unchanged"
    updated = dict(ours)
    updated["status"] = target_status
    for name, value in (("statusReason", version.get("statusReason")), ("output", outputs)):
        if value:
            updated[name] = value
        else:
            updated.pop(name, None)
    if status == "cancelled":
        seen = replace(seen, cancel_reason=None)
        updated.pop("businessStatus", None)
    updated = write_link(updated, seen, exchange.namespace_base)
    what = f"{link.remote}/_history/{vid}"
    extra = [
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": provenance_from(partner, f"Task/{ours['id']}", what),
            "request": {"method": "POST", "url": "Provenance"},
        }
    ]
    if status == "completed":
        extra += _complete_request(exchange, ours, known or {})
    extra += mirror_entries(exchange, updated)  # forwarded (via a coordination platform): upstream too
    return write_version(exchange, updated, extra), seen, "applied"


def _complete_request(
    exchange: Exchange, ours: dict[str, Any], known: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Our ServiceRequest completed with the referral (If-Match), when the Task has one in focus."""
    focus = str((ours.get("focus") or {}).get("reference") or "")
    if not focus.startswith("ServiceRequest/"):
        return []
    request = known.pop(focus, None) or exchange.local.read_reference(focus)  # read once, with the page
    if request.get("status") in ("completed", "revoked", "entered-in-error"):
        return []
    done = {**request, "status": "completed"}
    return [
        {
            "resource": done,
            "request": {"method": "PUT", "url": focus, "ifMatch": weak_etag(version_of(request))},
        }
    ]


def apply_remote(
    exchange: Exchange,
    partner: Partner,
    latest: dict[str, Any],
    ours: dict[str, Any],
    known: dict[str, dict[str, Any]] | None = None,
) -> tuple[Applied, dict[str, Any]]:
    """Replay every not-yet-applied version of one remote Task onto our Task, in order (``known``: our
    resources already read with the page, ``Type/id`` -> resource)."""
    result = Applied()
    link = read_link(ours, exchange.namespace_base)
    url = f"{exchange.remote_base(partner.name)}/Task/{latest['id']}"
    if link is None or link.partner != partner.name or link.remote != url:
        return _not_linked(exchange, partner, ours, link), ours
    if link.version == version_of(latest):
        return result, ours
    versions, fetched = remote_versions(exchange, partner, latest, link)
    for version in versions:
        ours, link, kind = apply_version(exchange, partner, ours, link, version, fetched, known)
        result.applied += kind == "applied"
        result.conflicts += kind == "conflict"
        result.ignored += kind == "ignored"
    return result, ours


def _not_linked(exchange: Exchange, partner: Partner, ours: dict[str, Any], link: Link | None) -> Applied:
    """A partner Task naming one of our Tasks it is not linked to (never sent to it, or a second Task
    naming a sent one) moves nothing; on a sent Task it is recorded once under ``not_applied``."""
    log.warning(
        "partner Task not linked to the referral it names; not applied", extra={"partner": partner.name}
    )
    if link is not None:
        noted = with_ignored(link, f"a Task of partner {partner.name} not linked to this referral names it")
        if noted is not link:
            _link_only(exchange, ours, noted)
    return Applied(ignored=1)
