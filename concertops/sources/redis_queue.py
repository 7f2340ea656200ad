"""Redis signals: the size of a sorted set, and the age of its oldest member (its score in ms).

The production service keeps its waiting queue in ``queue:waiting`` (score = issue time in ms): the WAITING
count is ZCARD, the oldest token's age is the server's ``TIME`` minus the lowest score, so the operator's
clock plays no part. A key of another type is an error (the map is wrong), an absent key an empty queue,
unless the Redis database holds no key at all: the service keeps its seat locks and token hashes there too,
so an empty database is as likely a ``redis_url`` that is not the service's as an idle service, and the
signal is UNKNOWN rather than a zero.
"""

from __future__ import annotations

from typing import Any

from concertops.model.findings import Observation
from concertops.model.signals import Signal
from concertops.redact import error_line

SOURCE = "redis"


class RedisSource:
    def __init__(self, url: str, timeout_s: float) -> None:
        import redis

        self.client: Any = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )

    def observe(self, signal: Signal) -> Observation:
        query = signal.describe_query()
        try:
            value = self._measure(signal.key, signal.measure)
        except Exception as exc:  # RedisError, a key of the wrong type
            return Observation(signal.name, SOURCE, query, error=error_line(exc))
        return Observation(signal.name, SOURCE, query, value=value)

    def _measure(self, key: str, measure: str) -> float:
        kind = self.client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind not in ("zset", "none"):
            raise LookupError(f"key {key} is a {kind}, not a sorted set: check the service map")
        if kind == "none" and not self.client.dbsize():
            database = self.client.connection_pool.connection_kwargs.get("db", 0)
            raise LookupError(
                f"{key} is absent and Redis database {database} holds no key at all: an idle service, or "
                "not the service's Redis (check redis_url)"
            )
        if measure == "zcard":
            return float(self.client.zcard(key))
        oldest = self.client.zrange(key, 0, 0, withscores=True)
        if not oldest:
            return 0.0
        seconds, micros = self.client.time()
        return max(0.0, (seconds * 1000 + micros / 1000 - float(oldest[0][1])) / 1000)

    def close(self) -> None:
        self.client.close()
