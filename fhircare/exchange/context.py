"""One exchange: our server, our partners' servers and the configuration that ties them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import clock
from ..errors import ConfigurationError, FhirServerError, RateLimited, TransientError, Unauthorized
from ..fhir import FhirClient
from ..fhir.auth import BearerAuth
from ..fhir.prepare import AnswerTooLarge
from ..settings import Settings
from .partners import Partner, Partners, partner_base

log = logging.getLogger("fhircare.exchange")


def instant(text: str | None) -> datetime:
    """A FHIR instant as an aware datetime, for ordering (the partner's own timestamps)."""
    if not text:
        return datetime.min.replace(tzinfo=UTC)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def is_instant(text: Any) -> bool:
    """Whether a partner's timestamp can be ordered (what is not is never compared nor kept)."""
    if not isinstance(text, str) or not text:
        return False
    try:
        instant(text)
    except ValueError:
        return False
    return True


def stamp() -> str:
    """Our clock's now as a FHIR instant (only for ``synced_at`` and Provenance, never for cursors)."""
    return clock.now().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def partner_auth(settings: Settings, partner: Partner) -> Any:
    """The partner's credentials as the file names them (tokens from the environment, read once)."""
    mode = partner.auth.get("mode", "none")
    if mode == "none":
        return None
    if mode == "bearer":
        tokens = dict(settings.partner_tokens)
        name = partner.auth["token_env"]
        if not tokens.get(name):
            raise ConfigurationError(f"partner {partner.name}: the variable {name} is not set")
        return BearerAuth(tokens[name])
    from ..fhir.auth import BackendServicesAuth  # needs the web extra (PyJWT)

    key = Path(partner.auth["key_file"]).read_text(encoding="utf-8")
    auth = BackendServicesAuth(
        partner.auth["token_url"],
        partner.auth["client_id"],
        key,
        scope=partner.auth.get("scope", "system/Task.cru system/*.rs"),
        algorithm=_algorithm(key),
    )
    return auth


def _algorithm(pem: str) -> str:
    """ES384 for an EC private key, else RS384 (the two SMART Backend Services allows)."""
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        return "RS384"  # not a readable key: the token request fails with the endpoint's answer
    return "ES384" if isinstance(key, EllipticCurvePrivateKey) else "RS384"


class PartnerUnreachable(TransientError):
    """A partner's server did not answer (after the client's retries): no business event."""


class PartnerThrottled(RateLimited):
    """A partner's server throttled us past the budget: it is there and answering, so it is not
    unreachable; the cycle stops for that partner (its cursor stays before what it did not read)."""


def _partner_throttled(partner: str, exc: RateLimited) -> PartnerThrottled:
    return PartnerThrottled(f"partner {partner}: {exc.message}", exc.issues, exc.retry_after, exc.written)


class PartnerAnswerError(FhirServerError):
    """A partner's server answered with something that is not FHIR."""


#: the largest answer a partner may send (a search page, a history, a batch of outputs): 100 Tasks or a
#: thousand versions are well under 1 MiB; beyond this the answer is refused unread, not applied
PARTNER_ANSWER_BYTES = 8 * 1024 * 1024


class PartnerClient(FhirClient):
    """A client for a partner's server: its transport failures are told apart from our server's, and
    no answer of it larger than ``PARTNER_ANSWER_BYTES`` is read."""

    partner: str = ""  # the partner's name, for refusals
    max_answer_bytes = PARTNER_ANSWER_BYTES

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> Any:
        try:
            return super().request(method, path_or_url, **kwargs)
        except (PartnerUnreachable, PartnerThrottled):
            raise
        except RateLimited as exc:
            raise _partner_throttled(self.partner, exc) from None
        except Unauthorized as exc:  # its token endpoint or its server refused our credentials
            raise Unauthorized(
                f"partner {self.partner}: {exc.message}", exc.issues, exc.http_status
            ) from None
        except TransientError as exc:
            raise PartnerUnreachable(exc.message, exc.issues, exc.http_status) from None
        except AnswerTooLarge as exc:
            raise PartnerAnswerError(f"partner {self.partner}: {exc.message}") from None
        except FhirServerError as exc:
            if (exc.http_status or 0) >= 500:  # a 500 that retries did not cover: down, not an answer
                raise PartnerUnreachable(exc.message, exc.issues, exc.http_status) from None
            raise

    def batch(self, bundle: Any) -> dict[str, Any]:
        try:
            return super().batch(bundle)
        except PartnerThrottled:
            raise
        except RateLimited as exc:  # its entries throttled past the budget
            raise _partner_throttled(self.partner, exc) from None

    def _resource(self, response: Any, expect_type: str | None = None) -> dict[str, Any]:
        try:
            return super()._resource(response, expect_type)
        except FhirServerError as exc:
            raise PartnerAnswerError(exc.message, exc.issues, exc.http_status) from None
        except RecursionError:  # JSON nested deeper than the parser goes: no FHIR answer
            raise PartnerAnswerError(f"partner {self.partner} answered with JSON nested too deeply") from None


@dataclass
class Exchange:
    """Our FHIR client, the partners' clients (made once each) and the configuration."""

    settings: Settings
    partners: Partners
    local: FhirClient
    remotes: dict[str, FhirClient] = field(default_factory=dict)

    @property
    def namespace_base(self) -> str:
        return self.settings.namespaces().base

    def remote(self, name: str) -> FhirClient:
        """A client for partner ``name`` (its base from the file or its Organization's Endpoint)."""
        if name not in self.remotes:
            partner = self.partners.get(name)
            base = partner_base(partner, self.local)
            client = PartnerClient.from_settings(
                self.settings, auth=partner_auth(self.settings, partner), base_url=base
            )
            assert isinstance(client, PartnerClient)
            client.partner = name
            self.remotes[name] = client
        return self.remotes[name]

    def remote_base(self, name: str) -> str:
        return self.remote(name).base_url

    def close(self) -> None:
        for client in self.remotes.values():
            client.close()
        self.remotes.clear()

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def absolute_reference(reference: dict[str, Any] | None, base: str) -> dict[str, Any] | None:
    """A relative ``Type/id`` reference made absolute under ``base`` (absolute ones kept)."""
    if not reference or not reference.get("reference"):
        return None
    ref = str(reference["reference"])
    out = {"reference": ref if ref.startswith(("http://", "https://")) else f"{base}/{ref}"}
    if reference.get("display"):
        out["display"] = reference["display"]
    return out
