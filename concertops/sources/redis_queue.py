"""Redis signals: the size of a sorted set, and the age of its oldest member (its score in ms).

The production service keeps its waiting queue in ``queue:waiting`` (score = issue time in ms): the WAITING
count is ZCARD, the oldest token's age is the server's ``TIME`` minus the lowest score, so the operator's
clock plays no part. A key of another type is an error (the map is wrong), an absent key an empty queue,
unless the Redis database holds no key at all: the service keeps its seat locks and token hashes there too,
so an empty database is as likely a ``redis_url`` that is not the service's as an idle service, and the
signal is UNKNOWN rather than a zero.

A lock family (``lock:seat:*``, taken with SET NX PX, each waiter retrying every few ms) shows contention
as SET calls: two reads of ``INFO commandstats`` a moment apart give the calls a second, and calls a
second times the retry period is how many requests are retrying at once (one waiter, one SET per period). The
keys held now come from a bounded SCAN, each with its time left, as evidence of which objects are fought
over. The commandstats are server-wide: SETs of anything else on the same server count as well, so the
page's thresholds sit well above what a service takes its locks at.
"""

from __future__ import annotations

import time
from typing import Any

from concertops.model.errors import MapGap
from concertops.model.findings import Observation
from concertops.model.signals import Signal
from concertops.redact import error_line

SOURCE = "redis"
SET_INTERVAL_S = 1.0  # between the two commandstats reads, at most
SCAN_LIMIT = 10_000  # keys of a lock family looked at, at most


class RedisSource:
    def __init__(self, url: str, timeout_s: float, shape: Any = None) -> None:
        import redis

        self.client: Any = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self.timeout_s = timeout_s
        # The keys and key templates the map names: the family check below leaves them out.
        self.named = _named(shape)

    def observe(self, signal: Signal) -> Observation:
        query = signal.describe_query()
        try:
            if signal.measure == "lock_waiters":
                return Observation(signal.name, SOURCE, query, value=self._set_rate() * signal.retry_s)
            if signal.measure == "lock_keys":
                held = self._held(signal.key)
                rows = tuple(sorted(held, key=lambda row: row[1])[:10])  # the longest held first
                return Observation(
                    signal.name, SOURCE, query, value=float(len(held)), rows=rows, columns=("key", "ms_left")
                )
            value = self._measure(signal.key, signal.measure)
        except Exception as exc:  # RedisError, a key of the wrong type
            gap = isinstance(exc, MapGap)
            return Observation(signal.name, SOURCE, query, error=error_line(exc), map_gap=gap)
        return Observation(signal.name, SOURCE, query, value=value)

    def _set_rate(self) -> float:
        """SET calls a second on the server, from two reads of its command statistics."""
        first, started = self._set_calls(), time.monotonic()
        time.sleep(min(SET_INTERVAL_S, self.timeout_s / 3))
        second, ended = self._set_calls(), time.monotonic()
        return max(0, second - first) / (ended - started)

    def _set_calls(self) -> int:
        stats = self.client.info("commandstats")
        return int(stats.get("cmdstat_set", {}).get("calls", 0))

    def _held(self, pattern: str) -> list[tuple[str, int]]:
        """The keys of a lock family held now, each with its milliseconds left (a bounded SCAN)."""
        keys = []
        for key in self.client.scan_iter(match=pattern, count=1000):
            keys.append(key.decode() if isinstance(key, bytes) else str(key))
            if len(keys) >= SCAN_LIMIT:
                break
        if not keys:
            return []
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.pttl(key)
        # A key released between the SCAN and the PTTL (-2) is no longer held.
        return [(key, int(left)) for key, left in zip(keys, pipe.execute(), strict=True) if int(left) != -2]

    def _measure(self, key: str, measure: str) -> float:
        kind = self.client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind not in ("zset", "none"):
            raise MapGap(f"key {key} is a {kind}, not a sorted set: check the service map")
        if kind == "none":
            self._absent(key)
        if measure == "zcard":
            return float(self.client.zcard(key))
        oldest = self.client.zrange(key, 0, 0, withscores=True)
        if not oldest:
            return 0.0
        seconds, micros = self.client.time()
        return max(0.0, (seconds * 1000 + micros / 1000 - float(oldest[0][1])) / 1000)

    def _absent(self, key: str) -> None:
        """An absent key is an empty queue only where its family says so; LookupError where it does not: a
        database with no key at all, no key of the key's family (``queue:*``) in a busy one, or a sorted set
        of that family the map does not name (``queue:waitng`` named, ``queue:waiting`` there)."""
        database = self.client.connection_pool.connection_kwargs.get("db", 0)
        total = int(self.client.dbsize())
        if not total:
            raise MapGap(
                f"{key} is absent and Redis database {database} holds no key at all: an idle service, or "
                "not the service's Redis (check redis_url)"
            )
        family = key.rsplit(":", 1)[0] + ":*" if ":" in key else "*"
        others: list[str] = []
        seen = 0
        for found in self.client.scan_iter(match=family, count=1000):
            seen += 1
            name = found.decode() if isinstance(found, bytes) else str(found)
            if not any(name == k or (k.endswith("*") and name.startswith(k[:-1])) for k in self.named):
                others.append(name)
            if seen >= SCAN_LIMIT or len(others) >= 100:
                break
        if not seen:
            raise MapGap(
                f"{key} is absent and no key of its family {family} is among Redis database {database}'s "
                f"{total} keys: the map may name the wrong key (`concertops doctor`)"
            )
        if others:
            pipe = self.client.pipeline(transaction=False)
            for name in others:
                pipe.type(name)
            kinds = [k.decode() if isinstance(k, bytes) else str(k) for k in pipe.execute()]
            unnamed = [name for name, kind in zip(others, kinds, strict=True) if kind == "zset"]
            if unnamed:
                raise MapGap(
                    f"{key} is absent, and {', '.join(sorted(unnamed)[:3])} (a sorted set of its family "
                    f"{family}) is one the map does not name: the map may name the wrong key "
                    "(`concertops doctor`)"
                )

    def close(self) -> None:
        self.client.close()


def _named(shape: Any) -> tuple[str, ...]:
    """The queue keys the map names (templates as prefixes with ``*``), and its lock families."""
    if shape is None:
        return ()
    keys = [k for k in (shape.queue.waiting, shape.queue.active, shape.queue.token) if k is not None]
    named = [k.key.split("{", 1)[0] + "*" if k.templated else k.key for k in keys]
    return (*named, *(lock.pattern for lock in shape.locks.values()))
