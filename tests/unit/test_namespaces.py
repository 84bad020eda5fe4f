"""fhircare's own systems are URLs under the deployment's base; readers also accept the urn:fhircare: ones."""

from __future__ import annotations

import pytest

from fhircare.errors import ConfigurationError
from fhircare.namespaces import DEFAULT_NAMESPACE_BASE, Namespaces, legacy_system
from fhircare.settings import Settings


def test_the_deployer_sets_the_base_once_in_the_environment() -> None:
    settings = Settings.from_env({"FHIRCARE_NAMESPACE_BASE": "https://care.example.net/ns"})

    assert settings.namespaces().system("request-id") == "https://care.example.net/ns/sid/request-id"
    assert settings.namespaces().system("workflow") == "https://care.example.net/ns/CodeSystem/workflow"
    assert Settings.from_env({}).namespace_base == DEFAULT_NAMESPACE_BASE


@pytest.mark.parametrize("base", ["urn:fhircare:", "care.example.net/ns", "https://x.example/ns?a=1"])
def test_a_base_that_is_not_an_http_url_is_refused(base: str) -> None:
    with pytest.raises(ConfigurationError, match="FHIRCARE_NAMESPACE_BASE"):
        Settings.from_env({"FHIRCARE_NAMESPACE_BASE": base}).namespaces()


def test_a_token_search_finds_the_current_and_the_earlier_system() -> None:
    ns = Namespaces("http://fhircare.example.org/fhir/")

    assert ns.token("request-id", "r1/task") == (
        "http://fhircare.example.org/fhir/sid/request-id|r1/task,urn:fhircare:request-id|r1/task"
    )
    assert ns.is_system("urn:fhircare:workflow", "workflow")
    assert not ns.is_system("http://other.example/CodeSystem/workflow", "workflow")
    assert legacy_system("directory-category") == "urn:fhircare:directory:category"
