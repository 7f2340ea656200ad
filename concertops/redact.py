"""Keep secrets out of every output, log line and audit row."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_MASK = "***"
# user:password@ inside any URL-ish string, e.g. in a driver's error message.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")


def redact_url(url: str | None) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:{_MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask URL passwords and any of ``secrets`` wherever they appear in ``text``."""
    out = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{_MASK}@", text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, _MASK)
    return out


_WEB_LINK = re.compile(r"\s*\(Background on this error at: [^)]*\)")


def error_line(exc: BaseException, limit: int = 200) -> str:
    """An exception as one line for a report: its first line (or its type), bounded, passwords masked,
    without SQLAlchemy's web link."""
    text = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact_text(_WEB_LINK.sub("", text)[:limit])
