"""An overlay mapping with a mistake fails when it is loaded, naming the file, the JSON path and the reason."""

from __future__ import annotations

import pytest
import yaml

from fhircare.errors import ConfigurationError
from fhircare.mapping import load_mappings
from fhircare.mapping.language import EXPRESSIONS
from fhircare.settings import Settings

BUILTIN = Settings().builtin_mappings_dir


def _overlay(tmp_path, resource):
    refer = yaml.safe_load((BUILTIN / "refer.yaml").read_text())
    refer["entries"][1]["resource"] = resource
    (tmp_path / "refer.yaml").write_text(yaml.safe_dump(refer))
    return tmp_path


@pytest.mark.parametrize(
    ("resource", "reason"),
    [
        ({"resourceType": "Task", "requester": {"$reff": "requester"}}, "unknown expression '$reff'"),
        (
            {"resourceType": "Task", "code": {"$code": "x", "tabel": "services"}},
            "$code takes no option 'tabel'",
        ),
        ({"resourceType": "Task", "note": [{"$fn": "shout", "args": []}]}, "unknown transform 'shout'"),
        ({"resourceType": "Task", "for": {"$ref": "patient", "$": "patient"}}, "one expression per object"),
        (
            {"resourceType": "Task", "status": {"$if": "x", "then": {"$cnst": "a"}}},
            "unknown expression '$cnst'",
        ),
    ],
)
def test_a_mistake_in_an_overlay_fails_at_load_with_file_path_and_reason(tmp_path, resource, reason):
    overlay = _overlay(tmp_path, resource)
    with pytest.raises(ConfigurationError) as refused:
        load_mappings(BUILTIN, overlay)
    message = str(refused.value)
    assert str(overlay / "refer.yaml") in message
    assert "$.entries[1].resource." in message
    assert reason in message


def test_every_expression_the_language_knows_is_used_by_a_shipped_mapping():
    used = set()

    def walk(node):
        if isinstance(node, dict):
            used.update(k for k in node if k.startswith("$"))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    for path in BUILTIN.glob("*.yaml"):
        walk(yaml.safe_load(path.read_text()))
    assert sorted(set(EXPRESSIONS) - used) == []
