"""Settings, loaded once from the environment (and CLI flags) and passed down.

No module reads ``os.environ`` at import time; ``Settings.from_env`` is called by the faces.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import ConfigurationError
from .namespaces import DEFAULT_NAMESPACE_BASE, Namespaces

DEFAULT_EMBEDDED_PORT = 8765
PACKAGE_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_ROOT.parent


def data_root() -> Path:
    """Where the built-in mappings, profiles and rules are: the source tree (a clone, or an editable
    install) when fhircare runs from one, else the copy a wheel carries in ``fhircare/_data``."""
    if (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "mappings").is_dir():
        return PROJECT_ROOT
    return PACKAGE_ROOT / "_data"


DATA_ROOT = data_root()


def default_cache_dir() -> Path:
    """Where fhircare keeps what it learned about servers: ``FHIRCARE_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/fhircare``, else ``~/.cache/fhircare`` (read when called, never at import)."""
    explicit = os.environ.get("FHIRCARE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "fhircare"


def environment_proxies(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The proxy variables of an environment as urllib reads them: ``{"http": url, "https": url,
    "all": url, "no": "host,.domain,10.0.0.0/8"}``; lowercase names win over uppercase ones, and
    ``HTTP_PROXY`` is ignored inside a CGI request (``REQUEST_METHOD`` set), as urllib does."""
    env = os.environ if env is None else env
    found: dict[str, str] = {}
    for name, value in env.items():  # uppercase first, so that lowercase names override them
        if value and name[-6:] == "_PROXY" and name.isupper():
            found[name[:-6].lower()] = value
    if "REQUEST_METHOD" in env:
        found.pop("http", None)
    for name, value in env.items():
        if value and name[-6:] == "_proxy" and name.islower():
            found[name[:-6]] = value
    return found


def _seconds(env: Mapping[str, str], name: str, wanted: str, positive: bool = False) -> float:
    """A finite number from variable ``name`` (above 0 when ``positive``, else 0 or more), or a
    :class:`~fhircare.errors.ConfigurationError` naming the variable."""
    try:
        number = float(env[name].strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        raise ConfigurationError(f"{name} must be {wanted}, not {env[name]!r}")
    return number


def embedded_base_url(port: int = DEFAULT_EMBEDDED_PORT) -> str:
    return f"http://127.0.0.1:{port}/fhir"


@dataclass(frozen=True)
class Settings:
    """Everything fhircare needs to know about its surroundings."""

    base_url: str = field(default_factory=embedded_base_url)
    bearer_token: str | None = None
    timeout_connect: float = 3.05
    timeout_read: float = 30.0
    retries: int = 3
    backoff_factor: float = 0.2
    # the _count of the views' searches (FHIRCARE_PAGE_SIZE, the CLI's --page-size, the API's page_size);
    # None: adaptive paging, pages as large as the server allows (fhircare/fhir/search.py)
    page_size: int | None = None
    # literal references in payloads are checked to exist: "transaction" sends them as conditional
    # references the server resolves inside the one transaction (HAPI, the embedded server);
    # "batch" searches for them before writing (servers without conditional references); "off";
    # "auto" (default) picks per server from what a probe saw, remembered in the cache directory
    verify_references: str = "auto"
    # the name what fhircare learns about the server is kept under (FHIRCARE_SERVER_PROFILE), instead
    # of the identity the credentials carry (token subject / client, or a digest of the token)
    server_profile: str | None = None
    mappings_dir: Path | None = None  # a user's overlay folder; files there replace built-in ones
    rules_dir: Path | None = None  # a user's overlay folder for care-gap rules
    builtin_mappings_dir: Path = DATA_ROOT / "mappings"
    profiles_dir: Path = DATA_ROOT / "profiles"
    builtin_rules_dir: Path = DATA_ROOT / "rules"
    # sidecar
    secret_key: str | None = None
    redis_url: str | None = None
    smart_client_id: str | None = None
    smart_client_secret: str | None = None
    smart_redirect_uri: str | None = None
    smart_scopes: str = "launch openid fhirUser offline_access user/*.cruds"
    smart_issuers: tuple[str, ...] = ()
    auth_mode: str = "none"  # none | smart | passthrough | backend
    backend_client_id: str | None = None
    backend_key_file: str | None = None
    backend_token_url: str | None = None
    # backend mode: who may call the sidecar. Callers send a bearer JWT signed by a key in this PEM file
    # (RS256/RS384/ES256/ES384), for this audience (and issuer, when set); its scope claim is enforced
    caller_key_file: str | None = None
    caller_audience: str | None = None
    caller_issuer: str | None = None
    # SMART: token endpoints pinned per issuer ((iss, token_url), ...): discovery must name exactly these
    smart_token_endpoints: tuple[tuple[str, str], ...] = ()
    # reverse proxies in front of the sidecar whose X-Forwarded-For/-Proto/-Host are trusted (0: none)
    trusted_proxies: int = 0
    log_json: bool = False
    bind_host: str = "127.0.0.1"  # where the sidecar is served (gunicorn -b must agree)
    # the base of fhircare's own identifier and code systems (request ids, workflows, payer decisions,
    # member ids): a URL the deployer controls (FHIRCARE_NAMESPACE_BASE); the default is a placeholder
    namespace_base: str = DEFAULT_NAMESPACE_BASE
    # the zone the console shows times in, labelled (FHIRCARE_TIMEZONE, an IANA name such as
    # America/Chicago); FHIR keeps instants with their offset, only the pages convert
    timezone: str = "UTC"
    # HTTP surroundings, read once: trust_env (as in requests) uses the proxy variables and ~/.netrc;
    # proxies holds the proxy variables as read (("https", url), ("no", "host,..."), ...). None (a
    # Settings made in code): each client reads them once when it is made
    trust_env: bool = True
    proxies: tuple[tuple[str, str], ...] | None = None
    # the largest _count the FHIR server allows (FHIRCARE_MAX_PAGE_SIZE); None: fhircare asks for
    # large pages and learns the server's cap from its answers
    max_page_size: int | None = None
    # FHIR R4 structure checks (pydantic models) on resources fhircare built from its validated
    # mappings, before they are sent (FHIRCARE_STRUCTURE_CHECKS=1); local profile checks always run
    structure_checks: bool = False
    # throttling: seconds a request may spend waiting out a server's 429s, whole or per bundle entry
    # (FHIRCARE_THROTTLE_BUDGET), and client-side pacing under a quota (FHIRCARE_MAX_REQUESTS_PER_MINUTE;
    # None: only what the server's RateLimit headers ask)
    throttle_budget: float = 60.0
    max_requests_per_minute: float | None = None
    # between organizations (fhircare.exchange): the partners file (FHIRCARE_PARTNERS) and, where no
    # file is given, our own Organization (FHIRCARE_ORGANIZATION, ``Organization/<id>``)
    partners_file: Path | None = None
    organization: str | None = None
    # the values of the environment's ``*_TOKEN`` variables, read once: a partner's ``token_env``
    # names one of them (never logged, never in repr)
    partner_tokens: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # the sidecar: /metrics served (FHIRCARE_METRICS=1; off by default, whatever the bind), and the
    # exchange sync Worker run in a background thread of the sidecar (FHIRCARE_SYNC_IN_SIDECAR=1)
    metrics: bool = False
    sync_in_sidecar: bool = False
    # minutes a task's completion may be undone after it was made (FHIRCARE_UNDO_WINDOW_MINUTES; 0: never)
    undo_window_minutes: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read ``FHIRCARE_*`` variables; keyword overrides (CLI flags) win when not None."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        text = {
            "base_url": "FHIRCARE_BASE_URL",
            "bearer_token": "FHIRCARE_BEARER_TOKEN",
            "secret_key": "FHIRCARE_SECRET_KEY",
            "redis_url": "FHIRCARE_REDIS_URL",
            "smart_client_id": "FHIRCARE_SMART_CLIENT_ID",
            "smart_client_secret": "FHIRCARE_SMART_CLIENT_SECRET",
            "smart_redirect_uri": "FHIRCARE_SMART_REDIRECT_URI",
            "smart_scopes": "FHIRCARE_SMART_SCOPES",
            "auth_mode": "FHIRCARE_AUTH_MODE",
            "backend_client_id": "FHIRCARE_BACKEND_CLIENT_ID",
            "backend_key_file": "FHIRCARE_BACKEND_KEY_FILE",
            "backend_token_url": "FHIRCARE_BACKEND_TOKEN_URL",
            "bind_host": "FHIRCARE_BIND_HOST",
            "caller_key_file": "FHIRCARE_CALLER_KEY_FILE",
            "caller_audience": "FHIRCARE_CALLER_AUDIENCE",
            "caller_issuer": "FHIRCARE_CALLER_ISSUER",
            "namespace_base": "FHIRCARE_NAMESPACE_BASE",
            "server_profile": "FHIRCARE_SERVER_PROFILE",
            "timezone": "FHIRCARE_TIMEZONE",
        }
        for attr, var in text.items():
            if env.get(var):
                values[attr] = env[var]
        for attr, var in (("mappings_dir", "FHIRCARE_MAPPINGS"), ("rules_dir", "FHIRCARE_RULES")):
            if env.get(var):
                values[attr] = Path(env[var])
        if env.get("FHIRCARE_SMART_ISSUERS"):
            values["smart_issuers"] = tuple(
                x.strip() for x in env["FHIRCARE_SMART_ISSUERS"].split(",") if x.strip()
            )
        if env.get("FHIRCARE_SMART_TOKEN_ENDPOINTS"):  # "iss=token_url,iss2=token_url2"
            pairs = [x.strip().split("=", 1) for x in env["FHIRCARE_SMART_TOKEN_ENDPOINTS"].split(",")]
            values["smart_token_endpoints"] = tuple(
                (p[0].strip(), p[1].strip()) for p in pairs if len(p) == 2
            )
        if env.get("FHIRCARE_TRUSTED_PROXIES"):
            values["trusted_proxies"] = int(env["FHIRCARE_TRUSTED_PROXIES"])
        for attr, var in (("timeout_read", "FHIRCARE_TIMEOUT"),):
            if env.get(var):
                values[attr] = float(env[var])
        if env.get("FHIRCARE_RETRIES"):
            values["retries"] = int(env["FHIRCARE_RETRIES"])
        if env.get("FHIRCARE_VERIFY_REFERENCES"):
            mode = env["FHIRCARE_VERIFY_REFERENCES"].strip().lower()
            values["verify_references"] = {"0": "off", "false": "off", "no": "off", "1": "transaction"}.get(
                mode, mode
            )
        if env.get("FHIRCARE_PAGE_SIZE"):
            values["page_size"] = int(env["FHIRCARE_PAGE_SIZE"])
        values["log_json"] = env.get("FHIRCARE_LOG_JSON", "") in ("1", "true", "yes")
        trust_env = env.get("FHIRCARE_TRUST_ENV", "1").strip().lower() not in ("0", "false", "no")
        values["trust_env"] = trust_env
        values["proxies"] = tuple(sorted(environment_proxies(env).items())) if trust_env else ()
        if env.get("FHIRCARE_MAX_PAGE_SIZE"):
            values["max_page_size"] = int(env["FHIRCARE_MAX_PAGE_SIZE"])
        values["structure_checks"] = env.get("FHIRCARE_STRUCTURE_CHECKS", "") in ("1", "true", "yes")
        if env.get("FHIRCARE_THROTTLE_BUDGET"):
            values["throttle_budget"] = _seconds(env, "FHIRCARE_THROTTLE_BUDGET", "0 or more seconds")
        if env.get("FHIRCARE_MAX_REQUESTS_PER_MINUTE"):
            values["max_requests_per_minute"] = _seconds(
                env, "FHIRCARE_MAX_REQUESTS_PER_MINUTE", "a number of requests above 0", positive=True
            )
        if env.get("FHIRCARE_PARTNERS"):
            values["partners_file"] = Path(env["FHIRCARE_PARTNERS"])
        if env.get("FHIRCARE_ORGANIZATION"):
            values["organization"] = env["FHIRCARE_ORGANIZATION"]
        values["metrics"] = env.get("FHIRCARE_METRICS", "") in ("1", "true", "yes")
        values["sync_in_sidecar"] = env.get("FHIRCARE_SYNC_IN_SIDECAR", "") in ("1", "true", "yes")
        if env.get("FHIRCARE_UNDO_WINDOW_MINUTES"):
            values["undo_window_minutes"] = _seconds(
                env, "FHIRCARE_UNDO_WINDOW_MINUTES", "a number of minutes, 0 or more"
            )
        values["partner_tokens"] = tuple(sorted((k, v) for k, v in env.items() if k.endswith("_TOKEN") and v))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def namespaces(self) -> Namespaces:
        """fhircare's identifier and code systems under ``namespace_base`` (checked: an http(s) URL)."""
        return Namespaces(self.namespace_base)

    def with_base(self, base_url: str | None) -> Settings:
        return self if not base_url else replace(self, base_url=base_url)
