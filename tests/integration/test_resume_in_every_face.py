"""Resuming a task applies every step, and an illegal step is refused, in every face: the library, the
CLI, the sidecar's API and its page (no request id anywhere but the page's own form ids)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import pytest
import requests
from click.testing import CliRunner

from fhircare.cli.main import cli
from fhircare.errors import IllegalTransition
from fhircare.settings import Settings
from fhircare.workflows import run
from tests.integration.sidecar_harness import Sidecar
from tests.support.cases import basics, referral_payload
from tests.support.servers import versions

STEPS = ["accepted", "in-progress", "on-hold", "in-progress"]


@pytest.fixture()
def dev(fhir_server) -> Iterator[Sidecar]:
    with Sidecar(Settings(base_url=fhir_server.base_url)) as running:
        yield running


def _task(client, uid):
    b = basics(client, uid)
    return b, run("refer", referral_payload(b, uid), client).written[1]


def test_the_library(client, uid):
    b, task = _task(client, uid)
    for to in STEPS:
        run("task", {"task": task, "to": to, "actor": b["coordinator"]}, client)
    assert client.read_reference(task)["status"] == "in-progress" and versions(client, task) == 1 + len(STEPS)
    run("task", {"task": task, "to": "completed"}, client)
    with pytest.raises(IllegalTransition):
        run("task", {"task": task, "to": "in-progress"}, client)


def test_the_cli(client, fhir_server, uid):
    b, task = _task(client, uid)
    runner = CliRunner()
    for to in STEPS:
        done = runner.invoke(
            cli,
            ["run", "task", "-", "--base", fhir_server.base_url],
            input=json.dumps({"task": task, "to": to}),
        )
        assert done.exit_code == 0, done.output
    assert client.read_reference(task)["status"] == "in-progress" and versions(client, task) == 1 + len(STEPS)
    runner.invoke(
        cli,
        ["run", "task", "-", "--base", fhir_server.base_url],
        input=json.dumps({"task": task, "to": "completed"}),
    )
    refused = runner.invoke(
        cli,
        ["run", "task", "-", "--base", fhir_server.base_url],
        input=json.dumps({"task": task, "to": "in-progress"}),
    )
    assert refused.exit_code == 4 and "cannot go from completed" in refused.output


def test_the_api(dev, client, uid):
    b, task = _task(client, uid)
    url = f"{dev.url}/api/v1/tasks/{task.split('/')[1]}/transition"
    for to in STEPS:
        assert requests.post(url, json={"to": to}, timeout=30).status_code == 201
    assert client.read_reference(task)["status"] == "in-progress" and versions(client, task) == 1 + len(STEPS)
    assert requests.post(url, json={"to": "completed"}, timeout=30).status_code == 201
    refused = requests.post(url, json={"to": "in-progress"}, timeout=30)
    assert refused.status_code == 409 and refused.json()["resourceType"] == "OperationOutcome"


def test_the_page(dev, client, uid):
    b, task = _task(client, uid)
    patient = b["patient"].split("/")[1]
    browser = requests.Session()
    form = f"{dev.url}/patients/{patient}/do/task"

    def send(to: str, request_id: str) -> requests.Response:
        csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get(form, timeout=30).text)
        data = {"csrf": csrf.group(1) if csrf else "", "task": task, "to": to, "request_id": request_id}
        return browser.post(form, data=data, timeout=30, allow_redirects=False)

    for to in STEPS:
        assert send(to, f"page-{uuid.uuid4().hex}").status_code == 303
    assert client.read_reference(task)["status"] == "in-progress" and versions(client, task) == 1 + len(STEPS)
    double = f"page-{uuid.uuid4().hex}"  # one form, sent twice (a double-click): one action
    assert send("completed", double).status_code == 303 and send("completed", double).status_code == 303
    assert versions(client, task) == 2 + len(STEPS)
    refused = send("in-progress", f"page-{uuid.uuid4().hex}")
    # the refusal is marked at the field it is about, in words (not the engine's message)
    assert (
        refused.status_code == 422 and "completed -&gt; in-progress is not a Task transition" in refused.text
    )
