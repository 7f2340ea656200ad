"""Which settings version each live backend instance has applied, read from its exported metrics.

From the profile's ``metrics_urls`` when it lists them (the instances themselves), else from Prometheus
(every ``booking_settings_version`` series it has now)."""

from __future__ import annotations

import time

from concertops.config import Profile
from concertops.contract.names import SETTINGS_VERSION
from concertops.redact import redact_url


def applied_versions(profile: Profile, timeout_s: float = 3.0) -> dict[str, int]:
    """instance → settings version it runs with; instances that do not answer are left out."""
    if profile.metrics_urls:
        return _from_endpoints(profile.metrics_urls, timeout_s)
    if profile.prometheus_url:
        return _from_prometheus(profile.prometheus_url, timeout_s)
    return {}


def wait_applied(profile: Profile, version: int, timeout_s: float) -> tuple[bool, dict[str, int]]:
    """Poll until every live instance runs ``version`` or later; (all applied, the last reading)."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = applied_versions(profile)
        if seen and all(v >= version for v in seen.values()):
            return True, seen
        if time.monotonic() >= deadline:
            return False, seen
        time.sleep(0.5)


def _from_endpoints(urls: tuple[str, ...], timeout_s: float) -> dict[str, int]:
    import httpx

    from concertops.sources.scrape import fetch_samples

    seen: dict[str, int] = {}
    for url in urls:
        try:
            samples = fetch_samples(url, timeout_s)
        except httpx.HTTPError:
            continue
        for name, _labels, value in samples:
            if name == SETTINGS_VERSION:
                seen[redact_url(url)] = int(value)
    return seen


def _from_prometheus(url: str, timeout_s: float) -> dict[str, int]:
    from concertops.sources.prometheus import prometheus

    try:
        result = prometheus(url, timeout_s).query(SETTINGS_VERSION)
    except Exception:  # down or odd: no instance is known to have applied anything
        return {}
    return {r["metric"].get("instance", "?"): int(float(r["value"][1])) for r in result}
