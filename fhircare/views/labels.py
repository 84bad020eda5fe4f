"""Short human labels for resources shown in views (names, codes, times). Never logged."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


def person_name(resource: dict[str, Any] | None) -> str:
    if not resource:
        return ""
    names = resource.get("name")
    if isinstance(names, str):
        return names
    for name in names or []:
        if not isinstance(name, dict):
            continue
        if name.get("text"):
            return str(name["text"])
        given = " ".join(str(g) for g in name.get("given") or [])
        text = f"{given} {name.get('family', '')}".strip()
        if text:
            return text
    return f"{resource.get('resourceType', '')}/{resource.get('id', '')}"


def concept_text(concept: Any) -> str:
    if isinstance(concept, list):
        return ", ".join(filter(None, (concept_text(c) for c in concept)))
    if not isinstance(concept, dict):
        return ""
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and (coding.get("display") or coding.get("code")):
            return str(coding.get("display") or coding.get("code"))
    return ""


def reference_of(element: Any) -> str | None:
    if isinstance(element, dict) and isinstance(element.get("reference"), str):
        return str(element["reference"])
    return None


def resource_label(resource: dict[str, Any] | None) -> str:
    """What a coordinator recognises a focus by: a service, an appointment time, a document title."""
    if not resource:
        return ""
    rtype = resource.get("resourceType")
    if rtype == "Appointment":
        start = str(resource.get("start", ""))[:16].replace("T", " ")
        what = concept_text(resource.get("serviceType")) or resource.get("description") or "appointment"
        return f"{what} {start}".strip()
    if rtype in ("Patient", "Practitioner", "RelatedPerson"):
        return person_name(resource)
    for key in ("code", "type", "category", "topic", "title", "description", "name"):
        value = resource.get(key)
        text = value if isinstance(value, str) else concept_text(value)
        if text:
            return text
    return f"{rtype}/{resource.get('id', '')}"


#: the system of identifiers naming a resource by its absolute URL: a copy of a partner's resource
URL_SYSTEM = "urn:ietf:rfc:3986"
#: where each outcome type keeps when it was done and who did it
_DONE_AT: tuple[str, ...] = ("performedDateTime", "performedPeriod", "effectiveDateTime", "effectivePeriod")
_DONE_AT += ("issued", "date", "authored", "recordedDate", "period")
_DONE_BY = ("performer", "author", "asserter", "recorder")


@dataclass(frozen=True)
class Outcome:
    """What a completed referral resulted in, in words: what was done, when (an instant or a date, as
    written: the page puts it in the coordinator's zone), by whom, and whether it is a copy of the
    partner's record (the partner's own words, never trusted as markup)."""

    text: str
    performed: str = ""
    performer: str = ""
    copied: bool = False

    def __str__(self) -> str:
        return self.text


def _actors(resource: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for key in _DONE_BY:
        value = resource.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                actor = item.get("actor")
                found.append(actor if isinstance(actor, dict) else item)
    return found


def outcome_references(task: dict[str, Any]) -> list[str]:
    """``Type/id`` of what a Task's outputs name (read with what the page already reads)."""
    refs = (reference_of(o.get("valueReference")) for o in task.get("output") or [] if isinstance(o, dict))
    return [r for r in refs if r and r.count("/") == 1]


def performer_references(resources: Iterable[dict[str, Any] | None]) -> list[str]:
    """``Type/id`` of who did the outcomes given (their performer, author, asserter or recorder)."""
    refs = {reference_of(a) for r in resources if r for a in _actors(r)}
    return sorted(r for r in refs if r and r.count("/") == 1)


def _copied(resource: dict[str, Any]) -> bool:
    found = resource.get("identifier")
    return any(
        isinstance(i, dict) and i.get("system") == URL_SYSTEM
        for i in (found if isinstance(found, list) else [found])
    )


def _done_at(resource: dict[str, Any]) -> str:
    for key in _DONE_AT:
        value = resource.get(key)
        if isinstance(value, dict):
            value = value.get("end") or value.get("start")
        if isinstance(value, str) and value:
            return value
    return ""


def outcomes(task: dict[str, Any], found: dict[str, dict[str, Any]], names: dict[str, str]) -> list[Outcome]:
    """A Task's outputs in words: a concept's text, else what the resource it names says was done
    (``found``: ``Type/id`` -> resource), when and by whom (``names``: ``Type/id`` -> a name; else the
    reference's display). A resource that could not be read is named by its type, never its id."""
    said = []
    for output in task.get("output") or []:
        if not isinstance(output, dict):
            continue
        concept = concept_text(output.get("valueCodeableConcept"))
        ref = reference_of(output.get("valueReference"))
        resource = found.get(ref or "")
        if concept or not resource:
            text = concept or (f"a {ref.split('/')[0]} that could not be read" if ref else "")
            if text:
                said.append(Outcome(text))
            continue
        who = [names.get(reference_of(a) or "") or str(a.get("display") or "") for a in _actors(resource)]
        label = resource_label(resource)
        if label == f"{resource.get('resourceType')}/{resource.get('id', '')}":
            label = f"a {resource.get('resourceType')}, not described"
        said.append(
            Outcome(
                label,
                _done_at(resource),
                ", ".join(dict.fromkeys(w for w in who if w)),
                _copied(resource),
            )
        )
    return said
