"""prior-auth: each golden case run on the server, and the server holds exactly what the case expects."""

from __future__ import annotations

import pytest

from tests.support.golden_server import expected_on_server, golden_cases, load_case, seed_and_run, stored

WORKFLOW = "prior-auth"


@pytest.mark.parametrize("name", golden_cases(WORKFLOW))
def test_the_golden_case_is_what_the_server_holds(name, client, uid):
    case, result, versions = seed_and_run(client, WORKFLOW, load_case(WORKFLOW, name), uid)

    expected = expected_on_server(case, result, versions)
    assert [r["resourceType"] for r in expected] == [w.split("/")[0] for w in result.written]
    for reference, resource in zip(result.written, expected, strict=True):
        assert stored(client, reference) == resource, reference
