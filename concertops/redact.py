"""Keep secrets out of every output, log line and audit row."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_MASK = "***"
# user:password@ inside any URL-ish string, e.g. in a driver's error message.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")
# user:password@host written without a scheme (a DSN pasted into a --reason).
_BARE_USERINFO = re.compile(
    r"(?<![\w/:*])(?P<user>[A-Za-z0-9_.\-]+):(?P<pw>[^@\s/:*]+)@(?=[A-Za-z0-9_.\-\[])"
)
# ?password=… / &passwd=… in a URL's query (PyMySQL and others accept them).
_QUERY_SECRET = re.compile(r"(?P<key>[?&;](?:password|passwd|pwd)=)(?P<pw>[^&;#\s]*)", re.IGNORECASE)


def redact_url(url: str | None) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if parts.password is None:
        return _QUERY_SECRET.sub(lambda m: f"{m['key']}{_MASK}", url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:{_MASK}@{host}"
    query = _QUERY_SECRET.sub(lambda m: f"{m['key']}{_MASK}", f"?{parts.query}")[1:] if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# password=…, token: …, api_key=… written out in free text (a --reason, a hook's stderr, an error line).
_CREDENTIAL = re.compile(r"(?i)\b(password|passwd|pwd|token|secret|api[_-]?key)(\s*[=:]\s*)[^\s,;&]+")
# The secrets this process knows (the profile's passwords, remembered when it is loaded): masked in any
# text, whatever words surround them.
_KNOWN: set[str] = set()
_SHORTEST = 4  # a shorter "secret" would mask ordinary words and numbers


def remember(*secrets: str | None) -> None:
    """Mask these wherever they appear from now on (too-short values are ignored, not masked)."""
    _KNOWN.update(s for s in secrets if s and len(s) >= _SHORTEST)


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask URL passwords, ``key=value`` credentials, the remembered secrets and any of ``secrets`` wherever
    they appear in ``text``."""
    out = text
    # Longest first: a secret that contains another is masked whole.
    for secret in sorted({*_KNOWN, *(s for s in secrets if s)}, key=len, reverse=True):
        out = out.replace(secret, _MASK)
    out = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{_MASK}@", out)
    out = _QUERY_SECRET.sub(lambda m: f"{m['key']}{_MASK}", out)
    out = _BARE_USERINFO.sub(lambda m: f"{m['user']}:{_MASK}@", out)
    return _CREDENTIAL.sub(lambda m: f"{m[1]}{m[2]}{_MASK}", out)


_WEB_LINK = re.compile(r"\s*\(Background on this error at: [^)]*\)")


def error_line(exc: BaseException, limit: int = 200) -> str:
    """An exception as one line for a report: its first line (or its type), bounded, passwords masked,
    without SQLAlchemy's web link."""
    text = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact_text(_WEB_LINK.sub("", text)[:limit])
