"""Credential redaction for anything that leaves a source: ids, events, errors, stats keys, logs.

`redact` works on a bare URI *and* on free text that merely contains URIs (OpenCV/FFmpeg error messages quote the
URL they were given), so every output path can pass its text through it.
"""
from __future__ import annotations

import re

# Query/fragment parameters whose values are secrets (matched case-insensitively, also as suffixes:
# "rtsp_password", "x-api-key", "access_token" ...).
_SECRET_PARAMS = (
    "password", "passwd", "pwd", "pass", "secret", "token", "key", "apikey", "api_key", "auth", "authorization",
    "sig", "signature", "credential", "credentials", "session", "sessionid",
)

# scheme://userinfo@host... : userinfo is everything up to the LAST '@' before whitespace/quotes, so an unencoded
# '@' inside a password is still covered (over-redaction is the safe side).
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^\s'\"<>]*@)")
_PARAM = re.compile(
    r"(?P<lead>[?&;#])(?P<name>[A-Za-z0-9_.\-]*(?:" + "|".join(re.escape(p) for p in _SECRET_PARAMS)
    + r"))=(?P<value>[^&#;\s'\"<>]*)",
    re.IGNORECASE,
)

REDACTED = "***"


def redact(text: object) -> str:
    """Return `text` (a URI or any message containing URIs) with credentials replaced by ``***``.

    ``rtsp://admin:pw@cam:554/s?token=abc`` -> ``rtsp://***@cam:554/s?token=***``. Non-strings are str()-ed first.
    """
    s = text if isinstance(text, str) else str(text)
    if "://" in s:
        s = _USERINFO.sub(lambda m: m.group("scheme") + REDACTED + "@", s)
    if "=" in s:
        s = _PARAM.sub(lambda m: f"{m.group('lead')}{m.group('name')}={REDACTED}"
                       if m.group("value") else m.group(0), s)
    return s


def has_credentials(uri: str) -> bool:
    """True when `uri` carries something `redact` would hide."""
    return redact(uri) != uri
