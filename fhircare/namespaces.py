"""fhircare's own identifier and code systems: URLs under a base the deployer configures.

``FHIRCARE_NAMESPACE_BASE`` (``Settings.namespace_base``) names a base the deployer controls; the default
``http://fhircare.example.org/fhir/`` is a placeholder that every deployment should replace. Identifier
systems live under ``<base>sid/``, code systems under ``<base>CodeSystem/``.

Releases before the base existed wrote unregistered ``urn:fhircare:<name>`` systems. What fhircare looks
up (request ids, member ids) and reads (Provenance, payer decisions) accepts those too, so resources
written then are still found and never written twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigurationError

DEFAULT_NAMESPACE_BASE = "http://fhircare.example.org/fhir/"
LEGACY_PREFIX = "urn:fhircare:"

#: the name of the system every run's resources carry their request id in
REQUEST_ID = "request-id"
# name -> folder under the base: identifier systems (sid/) or code systems (CodeSystem/)
_IDENTIFIERS = {"request-id", "member-id", "demo", "demo-mrn", "probe", "smoke"}
_CODE_SYSTEMS = {"workflow", "prior-auth-decision", "directory-category"}
# the names releases before the base used, where they differ from the new name
_LEGACY_NAMES = {"demo-mrn": "demo:mrn", "directory-category": "directory:category"}


def legacy_system(name: str) -> str:
    """The ``urn:fhircare:`` system an earlier release wrote for ``name``."""
    return LEGACY_PREFIX + _LEGACY_NAMES.get(name, name)


@dataclass(frozen=True)
class Namespaces:
    """The systems of one deployment: ``Namespaces(base).system("request-id")``."""

    base: str = DEFAULT_NAMESPACE_BASE
    #: whether searches also name the ``urn:fhircare:`` systems (False on a server known to hold none)
    legacy: bool = True

    def __post_init__(self) -> None:
        if not self.base.startswith(("http://", "https://")) or "?" in self.base or "#" in self.base:
            raise ConfigurationError(
                f"FHIRCARE_NAMESPACE_BASE must be an http(s) URL without query or fragment, not {self.base!r}"
            )
        if not self.base.endswith("/"):
            object.__setattr__(self, "base", self.base + "/")

    def system(self, name: str) -> str:
        """The URL of one of fhircare's systems (``request-id``, ``workflow``, ...)."""
        if name in _IDENTIFIERS:
            return f"{self.base}sid/{name}"
        if name in _CODE_SYSTEMS:
            return f"{self.base}CodeSystem/{name}"
        raise KeyError(name)

    def systems(self, name: str) -> tuple[str, str]:
        """The system written now and the one earlier releases wrote: what a reader accepts."""
        return self.system(name), legacy_system(name)

    def token(self, name: str, value: str) -> str:
        """A token search value matching ``value`` under the current or the earlier system
        (``system|value,urn:fhircare:name|value``: FHIR's comma is OR); the current one alone where
        ``legacy`` is off (an OR costs a server a second index lookup per conditional create)."""
        systems = self.systems(name) if self.legacy else (self.system(name),)
        return ",".join(f"{system}|{value}" for system in systems)

    def is_system(self, system: object, name: str) -> bool:
        """True when ``system`` is fhircare's ``name`` system, current or earlier."""
        return system in self.systems(name)

    def scope(self) -> dict[str, str]:
        """Every system by name, for mapping templates (``{$: namespace.member-id}``)."""
        return {name: self.system(name) for name in sorted(_IDENTIFIERS | _CODE_SYSTEMS)}


#: the systems under the default base: demo data and probes that no deployment setting reaches
DEFAULT_NAMESPACES = Namespaces()
