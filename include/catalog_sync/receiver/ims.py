"""A stand-in for Adobe IMS's token endpoint, so the OAuth client-credentials path runs end to end.

`POST /ims/token/v3` with a form body (grant_type=client_credentials, client_id,
client_secret, scope) answers `{"access_token", "token_type": "bearer", "expires_in"}`
as IMS does. The receiver then accepts those tokens until they expire on its side.
`ttl_s` is how long a token really lives; `expires_in_s` is what the answer claims:
setting the first below the second lets a token expire while the client still
trusts it, which is how a test makes the API answer 401 mid-run.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs


@dataclass(frozen=True)
class ImsSettings:
    client_id: str
    client_secret: str
    ttl_s: float = 3600.0
    expires_in_s: int = 3600


class TokenIssuer:
    def __init__(self, settings: ImsSettings):
        self.settings = settings
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._lock = threading.Lock()
        self.issued = 0

    def answer(self, form_body: bytes) -> tuple[int, dict[str, object]]:
        """(HTTP status, JSON body) of a token request, like IMS's."""
        form = {k: v[0] for k, v in parse_qs(form_body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if form.get("client_id") != self.settings.client_id or form.get("client_secret") != self.settings.client_secret:
            return 401, {"error": "invalid_client", "error_description": "invalid client_id or client_secret"}
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.settings.ttl_s
            self.issued += 1
        return 200, {"access_token": token, "token_type": "bearer", "expires_in": self.settings.expires_in_s}

    def is_valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and time.monotonic() < expiry
