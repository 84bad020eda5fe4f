"""Partners as configuration: a bad file fails at load, naming the file, the JSON path and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhircare.errors import ConfigurationError
from fhircare.exchange import check_organizations, load_partners, load_partners_file
from fhircare.settings import Settings

GOOD = """
self: {base: https://clinic.example.org/fhir/, organization: Organization/clinic}
partners:
  food-bank:
    organization: Organization/food-bank
    base: https://cbo.example.org/fhir
    pattern: direct
    auth: {mode: bearer, token_env: FOOD_BANK_TOKEN}
    poll: 15m
    notify: auto
    disclosure: agreement
"""


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "partners.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_file_gives_each_partner_its_settings(tmp_path: Path) -> None:
    partners = load_partners_file(_file(tmp_path, GOOD))
    assert partners.base == "https://clinic.example.org/fhir"
    food = partners.get("food-bank")
    assert food.poll.total_seconds() == 900
    assert food.auth == {"mode": "bearer", "token_env": "FOOD_BANK_TOKEN"}
    assert partners.owning("Organization/food-bank") is food
    assert partners.local("https://clinic.example.org/fhir/Task/1") == "Task/1"


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        (("pattern: direct", "pattern: smoke-signal"), "$.partners.food-bank.pattern", "is not one of"),
        (("poll: 15m", "poll: soon"), "$.partners.food-bank.poll", "does not match"),
        (
            ("{mode: bearer, token_env: FOOD_BANK_TOKEN}", "{mode: bearer}"),
            "$.partners.food-bank.auth",
            "auth",
        ),
        (("Organization/food-bank", "Org/food-bank"), "$.partners.food-bank.organization", "does not match"),
        (("Organization/clinic}", "Organization/food-bank}"), "$.partners.food-bank.organization", "twice"),
    ],
)
def test_an_invalid_file_names_file_path_and_reason(
    tmp_path: Path, change: tuple[str, str], path: str, reason: str
) -> None:
    file = _file(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigurationError) as caught:
        load_partners_file(file)
    text = str(caught.value)
    assert str(file) in text and path in text and reason in text


def test_a_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not YAML"):
        load_partners_file(_file(tmp_path, "self: [unclosed"))


def test_without_a_file_fhircare_organization_names_us() -> None:
    settings = Settings.from_env(
        {"FHIRCARE_ORGANIZATION": "Organization/clinic", "FHIRCARE_BASE_URL": "http://x/fhir"}
    )
    partners = load_partners(settings)
    assert (partners.base, partners.organization, partners.partners) == (
        "http://x/fhir",
        "Organization/clinic",
        {},
    )


def test_a_file_naming_an_organization_our_server_lacks_is_refused(
    tmp_path: Path, our_server: object
) -> None:
    from fhircare.fhir import FhirClient

    partners = load_partners_file(_file(tmp_path, GOOD))
    with FhirClient(our_server.base_url) as client:  # type: ignore[attr-defined]
        with pytest.raises(ConfigurationError, match=r"\$.self.organization"):
            check_organizations(partners, client)


def test_a_bearer_partner_gets_its_token_from_the_variable_it_names(tmp_path: Path) -> None:
    import requests

    from fhircare.exchange.context import partner_auth

    partners = load_partners_file(_file(tmp_path, GOOD))
    food = partners.get("food-bank")
    settings = Settings.from_env({"FOOD_BANK_TOKEN": "t0ken"})
    prepared = requests.Request("GET", "https://cbo.example.org/fhir/Task").prepare()
    assert partner_auth(settings, food)(prepared).headers["Authorization"] == "Bearer t0ken"
    assert "t0ken" not in repr(settings)
    with pytest.raises(ConfigurationError, match="FOOD_BANK_TOKEN is not set"):
        partner_auth(Settings.from_env({}), food)


def test_a_partner_without_a_base_is_found_through_its_organizations_endpoint(our_server: object) -> None:
    from fhircare.exchange.partners import Partner, partner_base
    from fhircare.fhir import FhirClient

    with FhirClient(our_server.base_url) as client:  # type: ignore[attr-defined]
        endpoint = client.create(
            {
                "resourceType": "Endpoint",
                "status": "active",
                "connectionType": {"code": "hl7-fhir-rest"},
                "payloadType": [{"text": "FHIR"}],
                "address": "https://cbo.example.org/fhir/",
            }
        )
        org = client.create(
            {
                "resourceType": "Organization",
                "name": "CBO",
                "endpoint": [{"reference": f"Endpoint/{endpoint['id']}"}],
            }
        )
        partner = Partner("cbo", f"Organization/{org['id']}")
        assert partner_base(partner, client) == "https://cbo.example.org/fhir"


LIGHT = """
  ride-co:
    organization: Organization/ride-co
    pattern: light
    callers: [Practitioner/driver-1, ride-intake-app]
    callers_by_role: true
"""


def test_a_light_partners_callers_are_loaded_and_found_by_identity(tmp_path: Path) -> None:
    partners = load_partners_file(_file(tmp_path, GOOD + LIGHT))
    ride = partners.get("ride-co")
    assert ride.callers == frozenset({"Practitioner/driver-1", "ride-intake-app"}) and ride.callers_by_role
    assert partners.of_caller("ride-intake-app") is ride
    assert partners.of_caller("Practitioner/driver-1") is ride
    assert partners.of_caller("Practitioner/someone-else") is None
    food = partners.get("food-bank")
    assert food.callers == frozenset() and not food.callers_by_role  # a partner without callers: none


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        (
            ("[Practitioner/driver-1, ride-intake-app]", "Practitioner/driver-1"),
            "ride-co.callers",
            "not of type",
        ),
        (("ride-intake-app]", "has space]"), "$.partners.ride-co.callers[1]", "does not match"),
        (("ride-intake-app]", "Patient/1]"), "$.partners.ride-co.callers[1]", "does not match"),
        (("ride-intake-app]", "17]"), "$.partners.ride-co.callers[1]", "is not of type"),
        (("ride-intake-app]", "Practitioner/driver-1]"), "$.partners.ride-co.callers", "non-unique"),
        (("callers_by_role: true", "callers_by_role: maybe"), "ride-co.callers_by_role", "not of type"),
        (
            ("disclosure: agreement", "disclosure: agreement\n    callers: [ride-intake-app]"),
            "$.partners.ride-co.callers[1]",
            "already a caller of partner food-bank",
        ),
    ],
)
def test_invalid_callers_fail_at_load_naming_file_path_and_reason(
    tmp_path: Path, change: tuple[str, str], path: str, reason: str
) -> None:
    file = _file(tmp_path, (GOOD + LIGHT).replace(*change))
    with pytest.raises(ConfigurationError) as caught:
        load_partners_file(file)
    text = str(caught.value)
    assert str(file) in text and path in text and reason in text, text
