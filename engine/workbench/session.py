"""Sign-in for the workbench: a signed, expiring session cookie and a CSRF token per session.

The cookie holds no claim data: when it expires, a digest of the token that signed in, and the
session's CSRF token. It is signed with HMAC-SHA256 under a key from ``PAYERPOLICY_SESSION_SECRET``
or, without it, derived from the service's bearer tokens, so every worker of ``serve --workers N``
accepts it and changing the tokens ends every session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass

from .. import clock

COOKIE = "pp_session"
LIFETIME_SECONDS = 8 * 3600  # a working day


@dataclass(frozen=True)
class Session:
    who: str  # a short digest of the signing-in token, never the token
    csrf: str
    expires: int


def secret_key(tokens: set[str]) -> bytes:
    configured = os.environ.get("PAYERPOLICY_SESSION_SECRET")
    if configured:
        return hashlib.sha256(configured.encode()).digest()
    return hashlib.sha256(b"payerpolicy-workbench\0" + "\0".join(sorted(tokens)).encode()).digest()


def _now() -> int:
    return int(clock.now().timestamp())


def new_session(token: str) -> Session:
    return Session(hashlib.sha256(token.encode()).hexdigest()[:12], secrets.token_urlsafe(24),
                   _now() + LIFETIME_SECONDS)


def encode(session: Session, key: bytes) -> str:
    body = base64.urlsafe_b64encode(json.dumps([session.who, session.csrf, session.expires]).encode()).decode()
    signature = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{signature}"


def decode(value: str | None, key: bytes) -> Session | None:
    """The session a cookie carries, or None when it is missing, forged or expired."""
    if not value or "." not in value:
        return None
    body, _, signature = value.rpartition(".")
    if not hmac.compare_digest(hmac.new(key, body.encode(), hashlib.sha256).hexdigest(), signature):
        return None
    try:
        who, csrf, expires = json.loads(base64.urlsafe_b64decode(body.encode()))
    except (ValueError, TypeError):
        return None
    if not isinstance(expires, int) or expires <= _now():
        return None
    return Session(str(who), str(csrf), expires)
