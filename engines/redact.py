"""Keep credentials out of everything we show or store: logs, the database, exports, the UI, the API.

- :func:`endpoint` — ``scheme://host[:port]/path`` of a URL: user-info, query and fragment removed.
- :func:`redact` — any text with the user-info of every URL in it removed, secret-looking query
  parameters masked, and the values of secret environment variables (``*_KEY``, ``*_TOKEN``,
  ``*_SECRET``, ``*_PASSWORD``, ``GHOSTPROBE_AUTH``) replaced by ``***``.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]{1,15})://([^\s/'\"<>@]*@)?([^\s'\"<>]*)")
_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:api[-_]?key|key|token|access[-_]?token|sig|signature|password|pwd|secret|code|auth)=)[^&#\s'\"<>]*")
_SECRET_ENV = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$|^GHOSTPROBE_AUTH$")


def endpoint(url: str | None) -> str | None:
    """The URL without user-info, query or fragment (None stays None; text that is not a URL is returned
    with any ``user:pass@`` removed)."""
    if url is None:
        return None
    url = str(url).strip()
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if not parts.scheme or not parts.netloc:
        return redact(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def host(url: str | None) -> str | None:
    """Just ``host[:port]`` of a URL, without credentials."""
    ep = endpoint(url)
    if not ep:
        return ep
    try:
        return urlsplit(ep).netloc or ep
    except ValueError:
        return ep


def secret_values() -> list[str]:
    """Values of secret-looking environment variables (at least 4 characters), longest first."""
    vals = set()
    for k, v in os.environ.items():
        if v and len(v) >= 4 and _SECRET_ENV.search(k):
            vals.add(v)
            if k == "GHOSTPROBE_AUTH" and ":" in v:
                pw = v.split(":", 1)[1]
                if len(pw) >= 4:
                    vals.add(pw)
    return sorted(vals, key=len, reverse=True)


def redact(text: object) -> str:
    """``text`` with credentials removed (see the module docstring). Safe on any object."""
    if text is None:
        return ""
    s = str(text)
    s = _URL.sub(lambda m: f"{m.group(1)}://{m.group(3)}", s)
    s = _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, s)
    for v in secret_values():
        if v in s:
            s = s.replace(v, MASK)
    return s
