"""Short-lived signed tokens (join tokens) and TURN REST API credentials. Pure functions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

JOIN_PURPOSE = b"dari-signaling-join-v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(secret: str) -> bytes:
    # A key of its own, derived from the app secret: a join token can never pass
    # for a CSRF token or anything else signed with the same secret.
    return hmac.new(secret.encode(), JOIN_PURPOSE, hashlib.sha256).digest()


def sign_join(
    secret: str, claims: dict[str, Any], ttl_seconds: float, now: float | None = None
) -> str:
    """A token carrying `claims` plus an expiry and a nonce."""
    body = dict(claims)
    body["exp"] = int((now if now is not None else time.time()) + ttl_seconds)
    body["jti"] = secrets.token_urlsafe(6)
    payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    signature = _b64(hmac.new(_key(secret), payload.encode(), hashlib.sha256).digest())
    return f"v1.{payload}.{signature}"


def verify_join(secret: str, token: str, now: float | None = None) -> dict[str, Any] | None:
    """The claims if the signature is good and the token has not expired, else None."""
    try:
        version, payload, signature = token.split(".")
    except ValueError:
        return None
    if version != "v1":
        return None
    expected = _b64(hmac.new(_key(secret), payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature):
        return None
    try:
        claims = json.loads(_unb64(payload))
    except ValueError:
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int):
        return None
    if claims["exp"] < (now if now is not None else time.time()):
        return None
    return claims


def turn_credentials(
    secret: str, user: str, ttl_seconds: int, now: float | None = None
) -> tuple[str, str]:
    """coturn `use-auth-secret`: username "expiry:user", password base64(HMAC-SHA1)."""
    expiry = int((now if now is not None else time.time()) + ttl_seconds)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def resume_token() -> tuple[str, str]:
    """(token for the client, hash to keep): the server never stores the token itself."""
    token = secrets.token_urlsafe(24)
    return token, hash_resume(token)


def hash_resume(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
