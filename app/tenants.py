"""API keys → tenants (a bounded set from config/env), and pseudonymisation of end-user ids."""

from __future__ import annotations

import hashlib
import hmac

from app.config import GatewayConfig

OPEN_TENANT = "default"


class Authenticator:
    def __init__(self, config: GatewayConfig) -> None:
        self._by_key = {key: t.name for t in config.tenants for key in t.keys}
        self.tenants = tuple(t.name for t in config.tenants)
        self.open = not self._by_key

    def tenant_for(self, authorization: str | None) -> str | None:
        """The tenant for an ``Authorization`` header value, or None when the key is missing/invalid."""
        if self.open:  # create_app logs the "running open" warning once at startup
            return OPEN_TENANT
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        token = token.strip()
        # Compare against every key so timing does not reveal which prefix matched.
        found = None
        for key, tenant in self._by_key.items():
            if hmac.compare_digest(key.encode(), token.encode()):
                found = tenant
        return found


def hash_user(user: str, salt: str) -> str:
    """A stable pseudonym for the ``user`` field: the raw value never leaves the process."""
    return hashlib.sha256(f"{salt}\x00{user}".encode()).hexdigest()[:32]
