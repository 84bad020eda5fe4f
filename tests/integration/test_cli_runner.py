"""The CLI through click's CliRunner: the whole command tree exists at import, errors are translated
once by the group (a one-line message and the error's exit code)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from fhircare.cli.main import cli
from tests.support.cases import CASES


def test_every_command_is_in_the_tree_at_import():
    assert {
        "run",
        "workflows",
        "worklist",
        "summary",
        "gaps",
        "caseload",
        "history",
        "authorizations",
        "demo",
        "directory",
        "serve",
        "server",
        "check",
        "smoke",
    } <= set(cli.commands)


def test_an_unknown_workflow_is_one_line_and_exit_2():
    result = CliRunner().invoke(cli, ["run", "no-such-workflow", "-"], input="{}")
    assert result.exit_code == 2
    assert "unknown workflow 'no-such-workflow'" in result.output
    assert "Traceback" not in result.output


def test_a_workflow_runs_and_a_bad_payload_names_its_field(fhir_server, client, uid):
    case = CASES["refer"](client, uid)
    runner = CliRunner()
    ran = runner.invoke(
        cli, ["run", "refer", "-", "--base", fhir_server.base_url], input=json.dumps(case.payload)
    )
    assert ran.exit_code == 0, ran.output
    written = json.loads(ran.output)["written"]
    assert client.read_reference(written[0])["subject"]["reference"] == case.payload["patient"]

    bad = runner.invoke(
        cli,
        ["--base", fhir_server.base_url, "run", "refer", "-"],
        input=json.dumps({**case.payload, "due": "soon"}),
    )
    assert bad.exit_code == 2 and "$.due" in bad.output
