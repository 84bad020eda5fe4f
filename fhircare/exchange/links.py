"""The link between our Task and the partner's, kept on our Task as one extension.

Why an extension: the partner's Task names ours in its ``identifier`` (the key of the conditional
create), but our side must also hold sync state - the remote version last applied, a pending cancel,
an open conflict, fields the partner changed that it does not own - and that is no business identifier,
and ``Task.output`` belongs to the performer (resulting activities), so neither can carry it. On our
Task the extension is read by every replica and worker and written with If-Match: the version check is
the lock, no other store is needed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

#: the system of identifiers that name a resource by its absolute URL (RFC 3986)
URL_SYSTEM = "urn:ietf:rfc:3986"
LINK = "StructureDefinition/exchange-link"
#: an identifier on our Task naming the partner it was sent to (value: the partner's name), written with
#: every link: ``exchange status`` searches by it instead of paging through everything the partner owns.
#: An identifier, not a meta tag: the workflows' If-Match PUTs send no meta.tag and both suite servers
#: then drop it (measured), while identifiers travel with the body.
SENT_TO = "sid/exchange-sent-to"
CONFLICT = "StructureDefinition/exchange-conflict"
PENDING_CANCEL = "cancel-pending"


@dataclass(frozen=True)
class Conflict:
    """A clash neither side's value is lost in: both statuses and versions, until resolved."""

    local_status: str
    local_version: str
    remote_status: str
    remote_version: str

    def to_json(self) -> dict[str, Any]:
        return {
            "local": {"status": self.local_status, "version": self.local_version},
            "remote": {"status": self.remote_status, "version": self.remote_version},
        }


@dataclass(frozen=True)
class Link:
    """What our Task knows of its partner's Task."""

    partner: str
    remote: str  # absolute URL, no _history
    version: str | None = None  # the remote version last applied (or seen)
    updated: str | None = None  # its meta.lastUpdated, as the partner wrote it
    synced_at: str | None = None  # when we last applied or checked (our clock)
    cancel_reason: str | None = None  # a cancel waiting for the partner
    remote_status: str | None = None  # the status of the remote version last seen
    ignored: tuple[str, ...] = ()  # why remote versions were not applied (field names, codes; no PHI)
    owned: tuple[str, ...] = ()  # "field=hash" of each requester-owned field as the partner stored it
    pushed: tuple[str, ...] = ()  # "field=hash" of our Task's copied fields as last put on the partner
    conflict: Conflict | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _url(namespace_base: str, what: str) -> str:
    return f"{namespace_base.rstrip('/')}/{what}"


def read_link(task: dict[str, Any], namespace_base: str) -> Link | None:
    """The link on our Task, or None when it was never sent."""
    url = _url(namespace_base, LINK)
    for ext in task.get("extension") or []:
        if ext.get("url") != url:
            continue
        values: dict[str, Any] = {}
        ignored: list[str] = []
        owned: list[str] = []
        pushed: list[str] = []
        conflict = None
        for sub in ext.get("extension") or []:
            key = sub.get("url")
            value = next((v for k, v in sub.items() if k.startswith("value")), None)
            if key == "ignored":
                ignored.append(str(value))
            elif key == "owned":
                owned.append(str(value))
            elif key == "pushed":
                pushed.append(str(value))
            elif key == "conflict":
                parts = {s["url"]: str(s.get("valueString")) for s in sub.get("extension") or []}
                conflict = Conflict(
                    parts.get("local-status", ""),
                    parts.get("local-version", ""),
                    parts.get("remote-status", ""),
                    parts.get("remote-version", ""),
                )
            elif key:
                values[key] = value
        if not values.get("partner") or not values.get("remote"):
            return None
        return Link(
            partner=str(values["partner"]),
            remote=str(values["remote"]),
            version=values.get("version"),
            updated=values.get("updated"),
            synced_at=values.get("synced-at"),
            cancel_reason=values.get("cancel-reason"),
            remote_status=values.get("remote-status"),
            ignored=tuple(ignored),
            owned=tuple(owned),
            pushed=tuple(pushed),
            conflict=conflict,
        )
    return None


def write_link(task: dict[str, Any], link: Link, namespace_base: str) -> dict[str, Any]:
    """A copy of our Task carrying ``link`` (replacing any earlier one)."""
    url = _url(namespace_base, LINK)
    subs: list[dict[str, Any]] = [
        {"url": "partner", "valueString": link.partner},
        {"url": "remote", "valueUri": link.remote},
    ]
    for key, value, kind in (
        ("version", link.version, "valueString"),
        ("updated", link.updated, "valueInstant"),
        ("synced-at", link.synced_at, "valueInstant"),
        ("cancel-reason", link.cancel_reason, "valueString"),
        ("remote-status", link.remote_status, "valueCode"),
    ):
        if value:
            subs.append({"url": key, kind: value})
    subs += [{"url": "ignored", "valueString": why} for why in link.ignored[-10:]]
    subs += [{"url": "owned", "valueString": digest} for digest in link.owned]
    subs += [{"url": "pushed", "valueString": digest} for digest in link.pushed]
    if link.conflict is not None:
        c = link.conflict
        subs.append(
            {
                "url": "conflict",
                "extension": [
                    {"url": "local-status", "valueString": c.local_status},
                    {"url": "local-version", "valueString": c.local_version},
                    {"url": "remote-status", "valueString": c.remote_status},
                    {"url": "remote-version", "valueString": c.remote_version},
                ],
            }
        )
    out = dict(task)
    out["extension"] = [e for e in task.get("extension") or [] if e.get("url") != url]
    out["extension"].append({"url": url, "extension": subs})
    system = _url(namespace_base, SENT_TO)
    out["identifier"] = [i for i in task.get("identifier") or [] if i.get("system") != system]
    out["identifier"].append({"system": system, "value": link.partner})
    return out


def sent_to_search(namespace_base: str, partner: str) -> str:
    """The ``identifier`` search value finding our Tasks sent to ``partner``."""
    return f"{_url(namespace_base, SENT_TO)}|{partner}"


def names_partner(task: dict[str, Any], namespace_base: str, partner: str) -> bool:
    """Whether our Task carries the identifier of the partner it was sent to."""
    system = _url(namespace_base, SENT_TO)
    return any(i.get("system") == system and i.get("value") == partner for i in task.get("identifier") or [])


def with_ignored(link: Link, why: str) -> Link:
    return link if why in link.ignored else replace(link, ignored=(*link.ignored, why))


def field_digests(resource: dict[str, Any], names: tuple[str, ...]) -> tuple[str, ...]:
    """``name=<12 hex>`` per field (``-`` when absent): compares fields without keeping their values."""
    out = []
    for name in names:
        value = resource.get(name)
        text = "-" if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))
        out.append(f"{name}={hashlib.sha256(text.encode()).hexdigest()[:12]}")
    return tuple(out)


def version_of(resource: dict[str, Any]) -> str:
    return str((resource.get("meta") or {}).get("versionId") or "")


def updated_of(resource: dict[str, Any]) -> str:
    return str((resource.get("meta") or {}).get("lastUpdated") or "")


def identifier_value(resource: dict[str, Any], system: str = URL_SYSTEM) -> str | None:
    for ident in resource.get("identifier") or []:
        if ident.get("system") == system and ident.get("value"):
            return str(ident["value"])
    return None
