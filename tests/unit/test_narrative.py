"""Narratives (Resource.text) come from the mappings as data: escaped XHTML, one paragraph per line."""

from __future__ import annotations

from datetime import UTC, datetime

from fhircare.mapping import BuildContext
from fhircare.mapping.entries import build_entries, narrative
from fhircare.settings import Settings
from fhircare.workflows import mappings_for


def _ctx(payload: dict[str, object]) -> BuildContext:
    return BuildContext(payload, {}, "r1", datetime(2026, 3, 1, tzinfo=UTC))


def test_a_narrative_escapes_what_the_payload_says() -> None:
    text = narrative(["Plan for <b>Ana</b> & family", {"$": "missing"}], _ctx({}), "$")
    assert text == {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Plan for &lt;b&gt;Ana&lt;/b&gt; &amp; family</p></div>',
    }


def test_a_narrative_with_nothing_to_say_gives_no_text() -> None:
    assert narrative([{"$format": "Due {due}"}], _ctx({}), "$") is None


def test_an_entry_narrative_becomes_the_resource_text() -> None:
    mapping = {
        "workflow": "x",
        "entries": [
            {
                "name": "plan",
                "narrative": {"$format": "Plan {title}"},
                "resource": {"resourceType": "CarePlan"},
            }
        ],
    }
    (entry,) = build_entries(mapping, _ctx({"title": "A"}))
    assert entry.resource["text"]["div"].endswith("<p>Plan A</p></div>")


def test_every_built_in_mapping_entry_has_a_narrative() -> None:
    mappings = mappings_for(Settings())
    missing = [
        f"{name}.{entry['name']}"
        for name, mapping in mappings.mappings.items()
        for entry in mapping["entries"]
        if "narrative" not in entry
    ]
    assert missing == []
