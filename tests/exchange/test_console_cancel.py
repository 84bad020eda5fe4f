"""The console's task page of a referral sent to a partner (issues 21 item 6, 22 item 3): no status of the
Task state machine is offered (the partner sets them, they come back by sync); the page says the
partner's status and when we last synced, and *Cancel the referral* (a reason required) runs the
exchange's cancel as ``POST /api/v1/exchange/cancel`` does - the partner's Task first. A conflict shows
both sides and *Keep ours* / *Take theirs*. Through the real sidecar (HTTP on loopback, development mode or
SMART) on both partner pairs (embedded-embedded, embedded-Medplum); both servers read afterwards."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from fhircare.exchange import send, sync_once, work
from fhircare.server.launcher import free_port
from fhircare.settings import Settings
from tests.exchange.conftest import World
from tests.integration.sidecar_harness import Sidecar, smart_settings
from tests.integration.smart_server import Client
from tests.security.conftest import AttackedAuthServer, login

HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)"')


def _settings(world: World, **extra: Any) -> Settings:
    return Settings(
        base_url=world.ours.base_url,
        partners_file=world.partners_file,
        retries=1,
        backoff_factor=0.01,
        **extra,
    )


@pytest.fixture()
def console(world: World) -> Iterator[Sidecar]:
    with Sidecar(_settings(world)) as running:
        yield running


def _address(world: World, task_id: str) -> str:
    return f"/patients/{world.patient.split('/')[1]}/tasks/{task_id}"


def _form(html: str, label: str) -> dict[str, str]:
    """The hidden fields of the page's form labelled ``label``."""
    assert f'aria-label="{label}"' in html, html[-3000:]
    return dict(HIDDEN.findall(html.split(f'aria-label="{label}"', 1)[1].split("</form>", 1)[0]))


def _status_section(html: str) -> str:
    return html.split('id="status-h"', 1)[1].split("</section>", 1)[0]


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _sent(world: World, accepted: bool = True) -> tuple[str, str]:
    """A referral sent to the partner, accepted there and synced back: (Task id, ServiceRequest id)."""
    task_id, request_id = world.refer()
    send(world.exchange, task_id)
    if accepted:
        work(world.theirs, world.remote_of(task_id)["id"], "accepted")
        assert sync_once(world.exchange, world.partner)["partners"][world.partner]["reachable"] is True
    return task_id, request_id


def _cancel(browser: requests.Session, console: Sidecar, world: World, task_id: str, reason: str) -> Any:
    page = browser.get(f"{console.url}{_address(world, task_id)}", timeout=30)
    assert page.status_code == 200, page.text[-2000:]
    fields = {**_form(page.text, "Cancel the referral"), "cancel_reason": reason}
    url = f"{console.url}{_address(world, task_id)}/cancel-referral"
    return browser.post(url, data=fields, timeout=90, allow_redirects=False)


def _versions(world: World, task_id: str, request_id: str) -> tuple[str, str, str]:
    return (
        world.ours.read("Task", task_id)["meta"]["versionId"],
        world.ours.read("ServiceRequest", request_id)["meta"]["versionId"],
        world.remote_of(task_id)["meta"]["versionId"],
    )


def test_a_sent_referral_offers_no_status_and_cancel_reaches_both_sides(
    world: World, console: Sidecar
) -> None:
    task_id, request_id = _sent(world)
    browser = requests.Session()
    page = browser.get(f"{console.url}{_address(world, task_id)}", timeout=30)
    status = _status_section(page.text)
    assert 'name="to"' not in status and 'type="radio"' not in status  # no performer status offered
    words = _text(status)
    assert "their organization sets its status" in words
    assert "partner: accepted · synced" in words and "last synced" in words
    assert "Cancel the referral" in words
    answer = _cancel(browser, console, world, task_id, "the patient moved away")
    assert answer.status_code == 303, answer.text[-2000:]
    after = browser.get(f"{console.url}{answer.headers['Location']}", timeout=30).text
    banner = re.search(r'<p class="flash" role="status">([^<]*)</p>', after)
    family = world.ours.read_reference(world.patient)["name"][0]["family"]
    assert banner and "Referral cancelled on both sides" in banner.group(1) and family in banner.group(1)
    remote = world.remote_of(task_id)
    assert remote["status"] == "cancelled" and remote["statusReason"]["text"] == "the patient moved away"
    ours = world.ours.read("Task", task_id)
    assert ours["status"] == "cancelled" and ours["statusReason"]["text"] == "the patient moved away"
    assert world.ours.read("ServiceRequest", request_id)["status"] == "revoked"
    assert "Cancel the referral" not in _text(_status_section(after))  # closed: nothing more to send
    # Back and resubmit (the same request id and version): one action, nothing more written anywhere
    versions = _versions(world, task_id, request_id)
    fields = {**_form(page.text, "Cancel the referral"), "cancel_reason": "the patient moved away"}
    again = browser.post(
        f"{console.url}{_address(world, task_id)}/cancel-referral", data=fields, allow_redirects=False
    )
    assert again.status_code == 303
    assert "Already done" in browser.get(f"{console.url}{again.headers['Location']}", timeout=30).text
    assert _versions(world, task_id, request_id) == versions
    stale = {**fields, "version": "another-tab", "request_id": "web-another-tab"}  # a form from elsewhere
    refused = browser.post(f"{console.url}{_address(world, task_id)}/cancel-referral", data=stale)
    assert refused.status_code == 409 and "The task is already cancelled." in refused.text
    assert f"Task/{task_id}" not in _text(refused.text.split('role="alert"', 1)[1][:400])
    assert _versions(world, task_id, request_id) == versions


def test_a_cancel_without_a_reason_is_refused_at_the_field_and_nothing_is_written(
    world: World, console: Sidecar
) -> None:
    task_id, request_id = _sent(world)
    versions = _versions(world, task_id, request_id)
    partner_before = world.partner_requests()
    browser = requests.Session()
    for reason, words in (("  ", "Say why the referral is cancelled"), ("x" * 201, "at most 200")):
        answer = _cancel(browser, console, world, task_id, reason)
        assert answer.status_code == 422, answer.text[-2000:]
        field = answer.text.split('id="cancel_reason-err"', 1)[1].split("</p>", 1)[0]
        assert words in field
        assert 'aria-invalid="true"' in answer.text.split('id="cancel-reason"', 1)[1].split(">", 1)[0]
        assert 'role="alert"' in answer.text and "was not changed" in answer.text
    assert world.partner_requests() == partner_before
    assert _versions(world, task_id, request_id) == versions


def test_the_partner_down_leaves_the_cancel_pending_and_sync_applies_it_later(
    world: World, console: Sidecar
) -> None:
    task_id, request_id = _sent(world)
    world.proxy.inject("503", times=10_000)
    browser = requests.Session()
    answer = _cancel(browser, console, world, task_id, "no longer needed")
    assert answer.status_code == 303, answer.text[-2000:]
    after = browser.get(f"{console.url}{answer.headers['Location']}", timeout=30).text
    pending = re.search(
        r'<div class="confirm pending-banner" role="status" data-pending-banner><p>([^<]*)', after
    )
    assert pending and "cancel pending" in pending.group(1).lower()
    assert "it is sent when the partner answers" in pending.group(1)
    assert 'class="flash"' not in after  # not shown as done
    ours = world.ours.read("Task", task_id)
    assert ours["status"] == "accepted"  # a partner down is no business event
    assert "cancel pending" in ours["businessStatus"]["text"]
    assert "cancel pending" in _text(after) and "A cancel is pending" in _text(_status_section(after))
    assert world.ours.read("ServiceRequest", request_id)["status"] == "active"
    world.proxy.clear()
    assert world.remote_of(task_id)["status"] == "accepted"
    sync_once(world.exchange, world.partner)  # the partner answers: the cancel goes out, then ours
    assert world.remote_of(task_id)["status"] == "cancelled"
    assert world.ours.read("Task", task_id)["status"] == "cancelled"
    assert world.ours.read("ServiceRequest", request_id)["status"] == "revoked"


def test_a_conflict_is_red_changes_nothing_and_is_resolved_from_the_page(
    world: World, console: Sidecar
) -> None:
    task_id, request_id = _sent(world)
    remote_id = world.remote_of(task_id)["id"]
    work(world.theirs, remote_id, "in-progress")
    work(world.theirs, remote_id, "completed", outcome="Delivered")  # not synced yet
    remote_version = world.remote_of(task_id)["meta"]["versionId"]
    browser = requests.Session()
    answer = _cancel(browser, console, world, task_id, "not needed")
    assert answer.status_code == 409, answer.text[-2000:]
    alert = re.search(r'<div class="problem" role="alert"><p>([^<]*)</p>', answer.text)
    assert alert, answer.text[-3000:]
    said = alert.group(1)
    assert "Not cancelled" in said and "completed" in said and remote_version in said
    assert "Nothing changed on either side" in said and "resolve" in said
    assert world.remote_of(task_id)["status"] == "completed"
    assert world.remote_of(task_id)["meta"]["versionId"] == remote_version
    assert world.ours.read("Task", task_id)["status"] != "cancelled"
    assert world.ours.read("ServiceRequest", request_id)["status"] == "active"
    page = browser.get(f"{console.url}{_address(world, task_id)}", timeout=30).text
    conflict = _text(_status_section(page))
    assert "the partner says completed" in conflict and remote_version in conflict
    assert "Keep ours" in conflict and "Take theirs" in conflict
    fields = {**_form(page, "Resolve the conflict"), "take": "remote"}
    url = f"{console.url}{_address(world, task_id)}/resolve"
    resolved = browser.post(url, data=fields, timeout=60, allow_redirects=False)
    assert resolved.status_code == 303, resolved.text[-2000:]
    after = browser.get(f"{console.url}{resolved.headers['Location']}", timeout=30).text
    assert "Conflict resolved" in after and "completed" in after
    assert world.ours.read("Task", task_id)["status"] == "completed"
    assert world.remote_of(task_id)["status"] == "completed"
    assert "Keep ours" not in _text(_status_section(after))


def test_another_patients_address_is_404_and_an_unconfigured_console_sends_nothing(
    world: World, console: Sidecar
) -> None:
    task_id, request_id = _sent(world)
    versions = _versions(world, task_id, request_id)
    partner_before = world.partner_requests()
    other = world.ours.create({"resourceType": "Patient", "name": [{"family": "Elsewhere"}]})
    browser = requests.Session()
    fields = {**_form(browser.get(f"{console.url}{_address(world, task_id)}").text, "Cancel the referral")}
    fields["cancel_reason"] = "wrong address"
    for path in (f"/patients/{other['id']}/tasks/{task_id}", f"/tasks/{task_id}"):
        for action in ("cancel-referral", "resolve"):
            answer = browser.post(f"{console.url}{path}/{action}", data={**fields, "take": "local"})
            assert answer.status_code == 404, (path, action, answer.status_code)
            assert "Elsewhere" not in answer.text and "Nothing was changed" in answer.text
    with Sidecar(Settings(base_url=world.ours.base_url)) as plain:  # no FHIRCARE_PARTNERS here
        page = browser.get(f"{plain.url}{_address(world, task_id)}", timeout=30).text
        words = _text(_status_section(page))
        assert "not configured on this console" in words and "Cancel the referral" not in words
        assert 'name="to"' not in _status_section(page)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf
        refused = browser.post(
            f"{plain.url}{_address(world, task_id)}/cancel-referral",
            data={"csrf": csrf.group(1), "cancel_reason": "x"},
        )
        assert refused.status_code == 409 and "not configured" in refused.text
    assert world.partner_requests() == partner_before
    assert _versions(world, task_id, request_id) == versions


def test_a_token_without_servicerequest_update_is_403_and_nothing_is_written(
    world: World, tmp_path: Path
) -> None:
    from fhircare.web.exchange_api import writes

    task_id, request_id = _sent(world)
    versions = _versions(world, task_id, request_id)
    partner_before = world.partner_requests()
    creates, updates = writes("cancel")
    granted: dict[str, set[str]] = {
        t: {"r", "s"} for t in ("Task", "Provenance", "Patient", "Practitioner", "Organization", "Basic")
    }
    for letter, types in (("c", creates), ("u", updates - {"ServiceRequest"})):
        for rtype in types:
            granted.setdefault(rtype, set()).add(letter)
    granted["ServiceRequest"] = {"r", "s"}
    scope = " ".join(f"user/{t}.{''.join(p for p in 'cruds' if p in g)}" for t, g in sorted(granted.items()))
    auth = AttackedAuthServer(world.ours.base_url)
    auth.start()
    port = free_port()
    auth.register(Client("fhircare-test", [f"http://127.0.0.1:{port}/callback"]))
    settings = smart_settings(
        auth.iss, port, partners_file=world.partners_file, retries=1, backoff_factor=0.01
    )
    try:
        with Sidecar(settings, port) as smart:
            browser = login(smart, auth, scope=f"launch openid fhirUser {scope}")
            answer = _cancel(browser, smart, world, task_id, "moved")
            assert answer.status_code == 403, answer.text[-2000:]
            assert "'u' on" in answer.text and "ServiceRequest" in answer.text
    finally:
        auth.stop()
    assert world.partner_requests() == partner_before
    assert _versions(world, task_id, request_id) == versions


def test_the_worklist_offers_no_performer_action_on_a_sent_referral(world: World, console: Sidecar) -> None:
    """A sent referral's row links to its page (*With the partner…*) instead of Accept/Start/Complete,
    which the partner sets; an unsent referral of the same owner keeps them."""
    sent_id, _ = _sent(world, accepted=False)  # requested: Accept would be offered on an unsent one
    unsent_id, _ = world.refer("not sent yet")
    page = requests.get(f"{console.url}/", params={"owner": world.org, "tab": "mine"}, timeout=30)
    assert page.status_code == 200, page.text[-2000:]
    rows = {
        m.group(1): m.group(2) for m in re.finditer(r'data-task="Task/([^"]+)"(.*?)</tr>', page.text, re.S)
    }
    assert "With the partner" in rows[sent_id] and 'value="accept"' not in rows[sent_id]
    assert 'value="accept"' in rows[unsent_id] and "With the partner" not in rows[unsent_id]
