"""Who is asking: API keys -> a principal (a tenant, or an admin), and the per-key rate limit.

Keys come from ``ASIF_API_KEYS`` / ``ASIF_API_KEYS_FILE`` as KEY=TENANT pairs; a key is sent as
``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Keys are compared in constant time and never logged."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ..errors import ConfigError
from ..meta import TENANT_SHARED, validate_tenant
from ..settings import AsifSettings, rate_per_second
from .errors import HTTPError

ADMIN = "@admin"


def parse_keys(text: str, source: str) -> dict[str, str]:
    """KEY=TENANT pairs (commas or new lines; '#' comments) -> {key: tenant or '@admin'}. Keys are never echoed."""
    keys: dict[str, str] = {}
    for n, raw in enumerate(text.replace(",", "\n").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, tenant = (x.strip() for x in line.partition("="))
        if not sep or not key or not tenant:
            raise ConfigError(f"{source} entry {n} is not KEY=TENANT (or KEY=@admin): write one pair per entry")
        if len(key) < 8:
            raise ConfigError(f"{source} entry {n} has a key shorter than 8 characters: use long random keys")
        if tenant != ADMIN:
            tenant = validate_tenant(tenant)
            if tenant == TENANT_SHARED:
                raise ConfigError(f"{source} entry {n} maps a key to {TENANT_SHARED!r}: use @admin for the shared set")
        keys[key] = tenant
    return keys


def load_keys(settings: AsifSettings) -> dict[str, str]:
    keys: dict[str, str] = {}
    if settings.api_keys:
        keys.update(parse_keys(settings.api_keys, "ASIF_API_KEYS"))
    if settings.api_keys_file is not None:
        path = Path(settings.api_keys_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"keys file {str(path)!r} does not exist: check ASIF_API_KEYS_FILE")
        keys.update(parse_keys(path.read_text(encoding="utf-8"), f"keys file {str(path)!r}"))
    return keys


@dataclass(frozen=True)
class Principal:
    """Who is asking: a tenant, or an admin (tenant None)."""

    tenant: str | None

    @property
    def admin(self) -> bool:
        return self.tenant is None

    @property
    def label(self) -> str:
        """The name used in metrics and access logs (never the key)."""
        return ADMIN if self.tenant is None else self.tenant

    def scope(self, requested: str | None) -> str:
        """The tenant a request acts on. A tenant key may name only its own tenant; the refusal is the same
        whether the named tenant exists or not."""
        if self.tenant is None:
            return validate_tenant(requested)
        if requested is not None and requested != self.tenant:
            raise HTTPError(403, "this API key may only use its own tenant: leave 'tenant' out")
        return self.tenant

    def require_admin(self, what: str) -> None:
        if not self.admin:
            raise HTTPError(403, f"{what} needs an admin key")


class Keys:
    """Constant-time lookup of a presented key among the configured ones (every key is compared)."""

    def __init__(self, keys: dict[str, str]) -> None:
        self._keys = [(k.encode(), t) for k, t in keys.items()]

    @property
    def open(self) -> bool:
        return not self._keys

    def find(self, presented: str | None) -> Principal | None:
        """The principal of a presented key; None when the key is missing or unknown (an open server: admin)."""
        if self.open:
            return Principal(None)
        if not presented:
            return None
        given = presented.encode()
        found: str | None = None
        for key, tenant in self._keys:
            if hmac.compare_digest(key, given):
                found = tenant
        if found is None:
            return None
        return Principal(None if found == ADMIN else found)

    def identify(self, presented: str | None) -> Principal:
        who = self.find(presented)
        if who is None:
            if not presented:
                raise HTTPError(401, "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
            raise HTTPError(401, "invalid API key")
        return who


class RateLimiter:
    """A token bucket per caller (a key's hash, or the client address when no valid key was sent)."""

    def __init__(self, rule: str | None) -> None:
        self.rate, self.burst = rate_per_second(rule) if rule else (0.0, 0.0)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, who: str) -> float:
        """0 when the caller may go on (one token taken), else the seconds until its next token."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(who, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens < 1:
                self._buckets[who] = (tokens, now)
                return (1 - tokens) / self.rate
            self._buckets[who] = (tokens - 1, now)
            if len(self._buckets) > 100_000:  # forget the idle callers (full buckets) so the table stays small
                self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self.burst - 1}
            return 0.0


_bearer = HTTPBearer(auto_error=False, description="An API key from ASIF_API_KEYS, as a bearer token.")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key from ASIF_API_KEYS.")


def principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> Principal:
    """The caller of a request (401 without a valid key, 429 past the rate limit); recorded for the metrics."""
    state = request.app.state
    presented = bearer.credentials if bearer is not None else header
    who = state.keys.find(presented)
    if who is not None and presented:
        caller = "key:" + hashlib.sha256(presented.encode()).hexdigest()[:16]
    else:
        caller = "addr:" + (request.client.host if request.client else "?")
    wait = state.rate_limiter.take(caller)
    if wait > 0:
        raise HTTPError(429, f"too many requests: retry in {wait:.1f} s (ASIF_RATE_LIMIT)",
                        {"Retry-After": str(max(1, round(wait + 0.49)))})
    who = state.keys.identify(presented) if who is None else who
    request.state.tenant = who.label
    return who


Who = Annotated[Principal, Depends(principal)]

__all__ = ["ADMIN", "Keys", "Principal", "RateLimiter", "Who", "load_keys", "parse_keys", "principal"]
