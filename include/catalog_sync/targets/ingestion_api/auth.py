"""Credentials for the Catalog Data Ingestion API: a bearer token, static or from Adobe IMS.

Both give `headers()` (the Authorization header) and `invalidate()` (forget a token the API
refused). The token never appears in a log line, an exception message or a repr.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from catalog_sync import clock

# Refresh an IMS token this long before it expires.
EXPIRY_MARGIN_S = 60.0


class IngestionAuthError(RuntimeError):
    """The credentials were refused (by the API or by IMS): the run must fail, retrying will not help."""


@dataclass(repr=False)
class StaticToken:
    token: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def invalidate(self) -> None:
        pass  # nothing to refresh: a second 401 fails the run

    def __repr__(self) -> str:
        return "StaticToken(***)"


@dataclass(repr=False)
class ImsClientCredentials:
    """OAuth client credentials grant against Adobe IMS; the token is cached until
    EXPIRY_MARGIN_S before `expires_in`. Thread-safe: one fetch at a time."""

    token_url: str
    client_id: str
    client_secret: str
    scope: str
    timeout_s: float = 30.0
    monotonic: Callable[[], float] = clock.monotonic
    _token: str | None = field(default=None, init=False)
    _expires_at: float = field(default=0.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._access_token()}"}

    def invalidate(self) -> None:
        with self._lock:
            self._token = None
            self._expires_at = 0.0

    def _access_token(self) -> str:
        with self._lock:
            if self._token is None or self.monotonic() >= self._expires_at:
                self._token, lifetime = self._fetch()
                self._expires_at = self.monotonic() + max(0.0, lifetime - EXPIRY_MARGIN_S)
            return self._token

    def _fetch(self) -> tuple[str, float]:
        data = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "scope": self.scope,
        }
        try:
            response = requests.post(self.token_url, data=data, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise IngestionAuthError(f"could not reach the token endpoint {self.token_url}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise IngestionAuthError(
                f"the token endpoint {self.token_url} refused the client credentials (HTTP {response.status_code}): "
                "check the catalog_sync_target Connection"
            )
        body = response.json()
        return str(body["access_token"]), float(body.get("expires_in", 3600))

    def __repr__(self) -> str:
        return f"ImsClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r}, scope={self.scope!r})"
