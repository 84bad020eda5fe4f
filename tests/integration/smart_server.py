"""A SMART authorization server for tests, built on Authlib's OAuth 2 server components, in front of
the embedded FHIR server. Served over real HTTP on 127.0.0.1.

- ``/fhir/.well-known/smart-configuration``: SMART discovery (PKCE S256 only)
- ``/authorize``: the authorization code grant with PKCE required; the end user consents at once
  (tests choose what is granted: ``server.grant_scope`` and ``server.grant_patient``)
- ``/token``: authorization_code (PKCE checked by Authlib), refresh_token, client_credentials with a
  private_key_jwt assertion (RFC 7523)
- ``/fhir/...``: a resource server: checks the bearer token, records it, forwards to the FHIR server
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, OAuth2Error, TokenMixin, grants
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


@dataclass
class Client(ClientMixin):
    client_id: str
    redirect_uris: list[str]
    client_secret: str | None = None
    public_key_pem: str | None = None
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")
    auth_method: str = "none"

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return scope

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class Code(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str
    code_challenge_method: str
    patient: str | None
    created: float = field(default_factory=time.time)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Issued(TokenMixin):
    access_token: str
    refresh_token: str | None
    client_id: str
    scope: str
    patient: str | None
    expires_at: float
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int(self.expires_at - time.time())

    def is_expired(self) -> bool:
        return self.expires_at < time.time()

    def is_revoked(self) -> bool:
        return self.revoked


class SmartAuthServer:
    def __init__(self, fhir_base: str) -> None:
        self.fhir_base = fhir_base.rstrip("/")
        self.app = Flask("smart-test-server")
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.iss = f"{self.base}/fhir"
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, Code] = {}
        self.tokens: dict[str, Issued] = {}
        self.refresh_tokens: dict[str, Issued] = {}
        self.grant_scope: str | None = None  # None: grant what was asked
        self.grant_patient: str | None = None
        self.user = "Practitioner/test-user"  # the fhirUser of whoever signs in
        self.token_lifetime = 3600
        self.seen_tokens: list[str] = []  # bearer tokens presented to the FHIR endpoint
        self.grants_used: list[str] = []
        self.challenges: list[tuple[str, str]] = []
        self._build()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # ---- registration --------------------------------------------------------------------

    def register(self, client: Client) -> Client:
        self.clients[client.client_id] = client
        return client

    # ---- the Authlib server ------------------------------------------------------------------

    def _build(self) -> None:
        owner = self
        app = self.app

        def save_token(token: dict[str, Any], req: Any) -> None:
            issued = Issued(
                token["access_token"],
                token.get("refresh_token"),
                req.client.client_id,
                token.get("scope", ""),
                token.get("patient"),
                time.time() + float(token.get("expires_in", owner.token_lifetime)),
            )
            owner.tokens[issued.access_token] = issued
            if issued.refresh_token:
                owner.refresh_tokens[issued.refresh_token] = issued

        server = AuthorizationServer(app, query_client=self.clients.get, save_token=save_token)
        server.register_token_generator("default", self._token_generator)

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic"]

            def save_authorization_code(self, code: str, req: Any) -> Code:
                data = req.payload.data
                owner.challenges.append((data.get("code_challenge"), data.get("code_challenge_method")))
                item = Code(
                    code,
                    req.client.client_id,
                    req.payload.redirect_uri,
                    owner.grant_scope if owner.grant_scope is not None else req.payload.scope,
                    data.get("code_challenge"),
                    data.get("code_challenge_method"),
                    owner.grant_patient,
                )
                owner.codes[code] = item
                return item

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                item = owner.codes.get(code)
                return (
                    item
                    if item and item.client_id == client.client_id and time.time() - item.created < 300
                    else None
                )

            def delete_authorization_code(self, code: Code) -> None:
                owner.codes.pop(code.code, None)

            def authenticate_user(self, code: Code) -> dict[str, Any]:
                return {"user": owner.user, "patient": code.patient}

            def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
                owner.grants_used.append("authorization_code")
                return super().create_token_response()

        class RefreshGrant(grants.RefreshTokenGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic"]
            INCLUDE_NEW_REFRESH_TOKEN = True

            def authenticate_refresh_token(self, refresh_token: str) -> Issued | None:
                issued = owner.refresh_tokens.get(refresh_token)
                return issued if issued and not issued.revoked else None

            def authenticate_user(self, issued: Issued) -> dict[str, Any]:
                return {"user": owner.user, "patient": issued.patient}

            def revoke_old_credential(self, issued: Issued) -> None:
                issued.revoked = True

            def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
                owner.grants_used.append("refresh_token")
                return super().create_token_response()

        class PrivateKeyJwt(JWTBearerClientAssertion):
            def get_audiences(self) -> list[str]:
                return [f"{owner.base}/token"]

            def validate_jti(self, claims: Any, jti: str) -> bool:
                return True

            def process_assertion_claims(self, assertion: str, key: Any) -> Any:
                from authlib.oauth2.rfc6749.errors import InvalidClientError
                from joserfc import jwt
                from joserfc.errors import JoseError

                try:  # SMART Backend Services signs with RS384 or ES384
                    token = jwt.decode(assertion, key, algorithms=["RS384", "ES384"])
                except JoseError as exc:
                    raise InvalidClientError(description=exc.description) from exc
                self.verify_claims(token.claims)
                return token.claims

            def resolve_client_public_key(self, client: Client) -> Any:
                from joserfc.jwk import ECKey, RSAKey

                pem = client.public_key_pem or ""
                return (RSAKey if "BEGIN PUBLIC KEY" in pem and len(pem) > 400 else ECKey).import_key(pem)

        class SystemGrant(grants.ClientCredentialsGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = [JWTBearerClientAssertion.CLIENT_AUTH_METHOD]

            def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
                owner.grants_used.append("client_credentials")
                return super().create_token_response()

        server.register_grant(CodeGrant, [CodeChallenge(required=True)])
        server.register_grant(RefreshGrant)
        server.register_grant(SystemGrant)
        server.register_client_auth_method(JWTBearerClientAssertion.CLIENT_AUTH_METHOD, PrivateKeyJwt())

        @app.get("/fhir/.well-known/smart-configuration")
        def discovery() -> Response:
            return jsonify(
                {
                    "issuer": owner.base,
                    "authorization_endpoint": f"{owner.base}/authorize",
                    "token_endpoint": f"{owner.base}/token",
                    "code_challenge_methods_supported": ["S256"],
                    "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
                    "token_endpoint_auth_methods_supported": [
                        "none",
                        "client_secret_basic",
                        "private_key_jwt",
                    ],
                    "capabilities": [
                        "launch-ehr",
                        "launch-standalone",
                        "client-public",
                        "context-ehr-patient",
                        "permission-v2",
                    ],
                }
            )

        @app.get("/authorize")
        def authorize() -> Any:
            end_user = {"user": owner.user}
            try:
                grant = server.get_consent_grant(end_user=end_user)
            except OAuth2Error as error:
                return server.handle_error_response(None, error)
            return server.create_authorization_response(grant_user=end_user, grant=grant)

        @app.post("/token")
        def token() -> Any:
            return server.create_token_response()

        @app.route("/fhir", defaults={"path": ""}, methods=["GET", "POST", "PUT", "DELETE"])
        @app.route("/fhir/<path:path>", methods=["GET", "POST", "PUT", "DELETE"])
        def fhir(path: str) -> Response:
            header = request.headers.get("Authorization", "")
            bearer = header[7:] if header.startswith("Bearer ") else ""
            issued = owner.tokens.get(bearer)
            if path != "metadata" and (issued is None or issued.revoked or issued.expires_at < time.time()):
                return Response(
                    '{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login"}]}',
                    401,
                    mimetype="application/fhir+json",
                )
            if bearer:
                owner.seen_tokens.append(bearer)
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP | {"authorization"}}
            answer = requests.request(
                request.method,
                f"{owner.fhir_base}/{path}",
                params=list(request.args.items(multi=True)),
                data=request.get_data(),
                headers=headers,
                timeout=30,
            )
            out = {
                k: v.replace(owner.fhir_base, owner.iss)
                for k, v in answer.headers.items()
                if k.lower() not in HOP
            }
            return Response(
                answer.content.replace(owner.fhir_base.encode(), owner.iss.encode()), answer.status_code, out
            )

    def _token_generator(
        self,
        grant_type: str,
        client: Client,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": secrets.token_urlsafe(24),
            "expires_in": self.token_lifetime,
            "scope": scope or "",
        }
        if include_refresh_token and grant_type != "client_credentials":
            token["refresh_token"] = secrets.token_urlsafe(24)
        if isinstance(user, dict):
            if user.get("patient"):
                token["patient"] = user["patient"]
            token["fhirUser"] = user.get("user")
        return token

    def start(self) -> SmartAuthServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
