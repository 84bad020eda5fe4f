"""Partners as configuration: the YAML file ``FHIRCARE_PARTNERS`` names, validated once at load.

The shape (names as in issue 21, so partners' files are portable)::

    self: {base: https://clinic.example.org/fhir, organization: Organization/clinic}
    partners:
      food-bank:
        organization: Organization/food-bank   # our Organization that stands for them
        base: https://cbo.example.org/fhir     # or omitted: found via Organization.endpoint
        pattern: direct                        # direct | light | via-cp
        auth: {mode: none}                     # none | bearer (token_env) | backend (client_id, token_url, key_file)
        poll: 15m
        notify: auto                           # auto | subscription | poll
        disclosure: agreement                  # agreement | consent-required
        callers: [Practitioner/cbo-nurse, cbo-intake-app]   # light pattern: who in the sidecar is them
        callers_by_role: true                  # also SMART users with a PractitionerRole at `organization`

Errors name the file, the JSON path and the reason; nothing is half-loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from ..clock import parse_offset
from ..errors import ConfigurationError, Issue
from ..fhir import FhirClient
from ..mapping.validate import json_path
from ..settings import Settings

log = logging.getLogger("fhircare.exchange")

#: the guide's floor for production polling (Gravity SDOH CC task-12: not more often than every 15 min)
POLL_FLOOR = timedelta(minutes=15)
DURATION = r"^[0-9]+(\.[0-9]+)?[smhd]$"
ORGANIZATION = r"^Organization/[A-Za-z0-9\-.]{1,64}$"
BASE = r"^https?://[^\s?#]+$"
#: a SMART user's ``fhirUser`` (``Practitioner/<id>``) or a backend caller token's ``sub``
CALLER = r"^(Practitioner/[A-Za-z0-9\-.]{1,64}|[A-Za-z0-9][A-Za-z0-9._:@\-]{0,127})$"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["self"],
    "properties": {
        "self": {
            "type": "object",
            "additionalProperties": False,
            "required": ["base", "organization"],
            "properties": {
                "base": {"type": "string", "pattern": BASE},
                "organization": {"type": "string", "pattern": ORGANIZATION},
            },
        },
        "partners": {
            "type": "object",
            "propertyNames": {"pattern": r"^[a-z0-9][a-z0-9\-_]{0,62}$"},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["organization"],
                "properties": {
                    "organization": {"type": "string", "pattern": ORGANIZATION},
                    "base": {"type": "string", "pattern": BASE},
                    "pattern": {"enum": ["direct", "light", "via-cp"]},
                    "auth": {
                        "type": "object",
                        "required": ["mode"],
                        "oneOf": [
                            {"properties": {"mode": {"const": "none"}}, "additionalProperties": False},
                            {
                                "properties": {
                                    "mode": {"const": "bearer"},
                                    "token_env": {"type": "string", "pattern": r"^[A-Z][A-Z0-9_]*_TOKEN$"},
                                },
                                "required": ["token_env"],
                                "additionalProperties": False,
                            },
                            {
                                "properties": {
                                    "mode": {"const": "backend"},
                                    "client_id": {"type": "string", "minLength": 1},
                                    "token_url": {"type": "string", "pattern": BASE},
                                    "key_file": {"type": "string", "minLength": 1},
                                    "scope": {"type": "string"},
                                },
                                "required": ["client_id", "token_url", "key_file"],
                                "additionalProperties": False,
                            },
                        ],
                    },
                    "poll": {"type": "string", "pattern": DURATION},
                    "overlap": {"type": "string", "pattern": DURATION},
                    "notify": {"enum": ["auto", "subscription", "poll"]},
                    # the variable holding the secret the partner's notifications must carry
                    "notify_secret_env": {"type": "string", "pattern": r"^[A-Z][A-Z0-9_]*_TOKEN$"},
                    "disclosure": {"enum": ["agreement", "consent-required"]},
                    # the light pattern: sidecar callers who are this partner's staff (their changes are
                    # the performer's, on this partner's Tasks only)
                    "callers": {
                        "type": "array",
                        "uniqueItems": True,
                        "items": {"type": "string", "pattern": CALLER},
                    },
                    "callers_by_role": {"type": "boolean"},
                },
            },
        },
    },
}


@dataclass(frozen=True)
class Partner:
    """One partner organization, as configured."""

    name: str
    organization: str  # our Organization that stands for them (Organization/<id>)
    base: str | None = None  # their FHIR base; None: read from the Organization's endpoint
    pattern: str = "direct"
    auth: dict[str, str] = field(default_factory=lambda: {"mode": "none"})
    poll: timedelta = timedelta(minutes=15)
    overlap: timedelta = timedelta(minutes=5)
    notify: str = "auto"
    disclosure: str = "agreement"
    notify_secret_env: str | None = None
    #: sidecar callers who are this partner's staff: backend token subjects and SMART ``fhirUser``s
    callers: frozenset[str] = frozenset()
    #: a SMART user whose Practitioner has a PractitionerRole at ``organization`` is a caller too
    callers_by_role: bool = False


@dataclass(frozen=True)
class Partners:
    """``self`` (our base and Organization) and the partners by name."""

    base: str
    organization: str
    partners: dict[str, Partner] = field(default_factory=dict)
    source: str = "<settings>"

    def absolute(self, reference: str) -> str:
        """Our ``Type/id`` as an absolute URL under ``self.base``."""
        return f"{self.base}/{reference}"

    def local(self, url: str) -> str | None:
        """``Type/id`` for an absolute URL under our base, else None."""
        prefix = self.base + "/"
        return url[len(prefix) :] if url.startswith(prefix) else None

    def owning(self, organization: str | None) -> Partner | None:
        """The partner our ``Organization/<id>`` stands for (a Task's owner), if any."""
        for partner in self.partners.values():
            if partner.organization == organization:
                return partner
        return None

    def of_caller(self, identity: str) -> Partner | None:
        """The partner whose ``callers`` list ``identity`` (a token subject or a ``fhirUser``)."""
        for partner in self.partners.values():
            if identity in partner.callers:
                return partner
        return None

    def get(self, name: str) -> Partner:
        try:
            return self.partners[name]
        except KeyError:
            known = ", ".join(sorted(self.partners)) or "none configured"
            raise ConfigurationError(f"no partner named {name!r} in {self.source} ({known})") from None


def _fail(source: str, path: str, reason: str) -> ConfigurationError:
    return ConfigurationError(f"invalid partners file {source}", [Issue("error", "invalid", reason, (path,))])


def parse_duration(text: str) -> timedelta:
    """``15m``, ``1h``, ``2s``, ``1d`` -> timedelta (ValueError otherwise)."""
    return parse_offset(text)


def parse_partners(document: Any, source: str) -> Partners:
    """Validate a loaded document against the schema and build :class:`Partners`."""
    errors = sorted(Draft202012Validator(SCHEMA).iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        reason = first.message if first.validator != "oneOf" else "auth: unknown mode or missing/extra keys"
        raise _fail(source, json_path(first.absolute_path), reason)
    own = document["self"]
    partners = {}
    for name, raw in (document.get("partners") or {}).items():
        poll = parse_duration(raw.get("poll", "15m"))
        if poll < POLL_FLOOR:
            log.warning("partner poll interval under 15 minutes (the guide's floor for production)")
        partners[name] = Partner(
            name=name,
            organization=raw["organization"],
            base=str(raw["base"]).rstrip("/") if raw.get("base") else None,
            pattern=raw.get("pattern", "direct"),
            auth=dict(raw.get("auth") or {"mode": "none"}),
            poll=poll,
            overlap=parse_duration(raw.get("overlap", "5m")),
            notify=raw.get("notify", "auto"),
            disclosure=raw.get("disclosure", "agreement"),
            notify_secret_env=raw.get("notify_secret_env"),
            callers=frozenset(raw.get("callers") or ()),
            callers_by_role=bool(raw.get("callers_by_role", False)),
        )
    orgs = [p.organization for p in partners.values()]
    for name, partner in partners.items():
        if orgs.count(partner.organization) > 1 or partner.organization == own["organization"]:
            raise _fail(source, f"$.partners.{name}.organization", "names an Organization used twice")
    _check_callers(document, source)
    return Partners(str(own["base"]).rstrip("/"), own["organization"], partners, source)


def _check_callers(document: Any, source: str) -> None:
    """A caller belongs to one partner only (a second listing would make its rights ambiguous)."""
    seen: dict[str, str] = {}
    for name, raw in (document.get("partners") or {}).items():
        for index, caller in enumerate(raw.get("callers") or ()):
            if caller in seen:
                raise _fail(
                    source,
                    f"$.partners.{name}.callers[{index}]",
                    f"already a caller of partner {seen[caller]}",
                )
            seen[caller] = name


def load_partners(settings: Settings) -> Partners:
    """The partners of ``settings.partners_file``, or just ``self`` from ``FHIRCARE_ORGANIZATION``
    (and the base URL) when no file is given."""
    path = settings.partners_file
    if path is None:
        if not settings.organization:
            raise ConfigurationError(
                "no partners configured: set FHIRCARE_PARTNERS (or FHIRCARE_ORGANIZATION)"
            )
        document = {"self": {"base": settings.base_url, "organization": settings.organization}}
        return parse_partners(document, "FHIRCARE_ORGANIZATION")
    return load_partners_file(Path(path))


def load_partners_file(path: Path) -> Partners:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(str(path), "$", f"cannot read the file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise _fail(str(path), "$", f"not YAML{where}") from None
    return parse_partners(document, str(path))


def check_organizations(partners: Partners, client: FhirClient) -> None:
    """Refuse a configuration that names an Organization our server does not hold (one batch read)."""
    wanted = [partners.organization, *(p.organization for p in partners.partners.values())]
    found = client.read_found(wanted)
    for name, partner in [("self", None), *partners.partners.items()]:
        org = partners.organization if partner is None else partner.organization
        if org not in found:
            path = "$.self.organization" if partner is None else f"$.partners.{name}.organization"
            raise _fail(partners.source, path, f"{org} is not on our FHIR server")


def partner_base(partner: Partner, client: FhirClient) -> str:
    """The partner's FHIR base: configured, else its Organization's first Endpoint address."""
    if partner.base:
        return partner.base
    org = client.read_reference(partner.organization)
    for endpoint in org.get("endpoint") or []:
        ref = str(endpoint.get("reference") or "")
        if ref.startswith("Endpoint/"):
            address = client.read_reference(ref).get("address")
            if address:
                return str(address).rstrip("/")
    raise ConfigurationError(
        f"partner {partner.name}: no base configured and no Endpoint on {partner.organization}"
    )
