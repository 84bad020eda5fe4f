"""Short human labels for resources shown in views (names, codes, times). Never logged."""

from __future__ import annotations

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
