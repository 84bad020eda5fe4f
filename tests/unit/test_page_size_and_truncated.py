"""Settings.page_size (adaptive unless FHIRCARE_PAGE_SIZE says), a view's Rows and the CLI's JSON of a
cut list, and the OpenAPI description of both."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner

from fhircare.cli.output import render_rows
from fhircare.settings import Settings
from fhircare.views.rows import Rows, drain, truncated
from fhircare.web.openapi import openapi_document


def test_page_size_is_adaptive_unless_the_environment_sets_it():
    assert Settings().page_size is None
    assert Settings.from_env({}).page_size is None
    assert Settings.from_env({"FHIRCARE_PAGE_SIZE": "250"}).page_size == 250
    assert Settings.from_env({"FHIRCARE_PAGE_SIZE": "250"}, page_size=50).page_size == 50


def test_rows_are_a_list_that_says_truncated():
    def stream():
        yield 1
        yield 2
        return True

    rows = drain(stream())
    assert rows == [1, 2] and isinstance(rows, list) and rows.truncated and truncated(rows)
    assert not Rows([1]).truncated and not truncated([1])


def _printed(rows, cut):
    @click.command()
    def show():
        render_rows(rows, ("a",), "json", truncated=cut)

    return json.loads(CliRunner().invoke(show).output)


def test_the_cli_json_is_the_array_unless_cut_short():
    assert _printed([{"a": 1}], False) == [{"a": 1}]
    assert _printed([{"a": 1}], True) == {"rows": [{"a": 1}], "truncated": True}


def test_openapi_describes_adaptive_page_size_envelope_and_truncated():
    paths = openapi_document(Settings())["paths"]
    for path in ("worklist", "directory", "authorizations", "gaps", "caseload"):
        operation = paths[f"/api/v1/{path}"]["get"]
        names = {p["name"]: p for p in operation["parameters"]}
        assert "envelope" in names, path
        answer = operation["responses"]["200"]
        assert "Fhircare-Truncated" in answer["headers"]
        envelope = answer["content"]["application/json"]["schema"]["oneOf"][1]
        assert envelope["required"] == ["rows", "truncated"]
        assert envelope["properties"]["truncated"] == {"type": "boolean"}
    assert (
        "adaptive"
        in {p["name"]: p for p in paths["/api/v1/worklist"]["get"]["parameters"]}["page_size"]["description"]
    )
