"""What a service's stores hold, for a draft map (``concertops map discover``): the database's tables and
columns (``information_schema``), its Redis key families and types (a bounded SCAN), the broker's topics,
groups and one message of each topic the runbooks read; then the zone its rows show. A store that cannot be
read is named with the reason, and the draft is written without it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import msgspec

from concertops.config import Profile
from concertops.contract.draft_map import Column, Draft, Facts, decide
from concertops.redact import error_line
from concertops.sources.map_check import unique_columns

SCAN_LIMIT = 10_000  # Redis keys looked at, at most
FAMILY_MIN = 2  # keys sharing a prefix and a type that make a family (``queue:token:*``)
TIMEOUT_S = 5.0


def discover(profile: Profile, name: str, probe_path: str = "") -> Draft:
    facts = Facts(probe_path=probe_path)
    if profile.database_url:
        _database(profile.database_url, facts)
    else:
        facts.database_error = "no database_url configured"
    if profile.redis_url:
        _redis(profile.redis_url, facts)
    if profile.kafka_bootstrap_servers:
        _kafka(profile.kafka_bootstrap_servers, facts)
    _metrics(profile, facts)
    draft = decide(facts, name)
    if profile.database_url and not facts.database_error:
        _zone(profile.database_url, draft)
    return draft


def _database(url: str, facts: Facts) -> None:
    import sqlalchemy as sa

    from concertops.sources.database import open_engine

    engine = open_engine(url, TIMEOUT_S, connections=1, read_timeout_s=TIMEOUT_S, pool_wait_s=TIMEOUT_S)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, COALESCE(COLUMN_DEFAULT, ''),"
                    " COLUMN_KEY FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
                    " ORDER BY TABLE_NAME, ORDINAL_POSITION"
                )
            )
            for table, column, kind, full, default, key in rows:
                # MariaDB says NULL (the word) for a nullable column without a default.
                written = "" if str(default).upper() == "NULL" else str(default)
                facts.tables.setdefault(str(table), []).append(
                    Column(str(column), str(kind).lower(), str(full), written, str(key) == "PRI")
                )
            facts.unique = unique_columns(conn)
            for table, columns in facts.tables.items():
                status = next((c for c in columns if c.name.lower() == "status"), None)
                if status is None:
                    continue
                if status.column_type.lower().startswith("enum("):
                    facts.statuses[table] = [v.strip("'") for v in status.column_type[5:-1].split(",")]
                else:  # a string column: the values its rows hold
                    seen = conn.execute(sa.text(f"SELECT DISTINCT `{status.name}` FROM `{table}` LIMIT 50"))
                    facts.statuses[table] = [str(v) for (v,) in seen]
    except Exception as exc:  # the server refused, or the user cannot read information_schema
        facts.database_error = error_line(exc)
    finally:
        engine.dispose()


def _redis(url: str, facts: Facts) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
    try:
        keys = []
        for key in client.scan_iter(count=1000):
            keys.append(key.decode() if isinstance(key, bytes) else str(key))
            if len(keys) >= SCAN_LIMIT:
                break
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        kinds = [k.decode() if isinstance(k, bytes) else str(k) for k in pipe.execute()] if keys else []
        facts.redis_scanned = len(keys)
        facts.redis_keys = families(list(zip(keys, kinds, strict=True)))
    except Exception as exc:  # RedisError
        facts.redis_error = error_line(exc)
    finally:
        client.close()


def families(typed: list[tuple[str, str]]) -> dict[str, tuple[str, int]]:
    """Keys of one type sharing a prefix (up to the last ``:``) and ending in an id (``queue:token:<token>``,
    ``lock:seat:<uuid>``), as ``prefix:*``; the rest (``queue:waiting``) as themselves."""

    def prefix_of(key: str) -> str:
        if ":" not in key:
            return ""
        prefix, last = key.rsplit(":", 1)
        return prefix if re.search(r"\d", last) or len(last) >= 12 else ""

    shared = Counter((prefix_of(key), kind) for key, kind in typed if prefix_of(key))
    found: dict[str, tuple[str, int]] = {}
    for key, kind in typed:
        prefix = prefix_of(key)
        if prefix and shared[(prefix, kind)] >= FAMILY_MIN:
            family = f"{prefix}:*"
            found[family] = (kind, found.get(family, (kind, 0))[1] + 1)
        else:
            found[key] = (kind, 1)
    return found


def _kafka(bootstrap: str, facts: Facts) -> None:
    from confluent_kafka.admin import AdminClient

    config: dict[str, str | int | float | bool] = {
        "bootstrap.servers": bootstrap,
        "socket.timeout.ms": int(TIMEOUT_S * 1000),
        "log_level": 0,
    }
    try:
        admin = AdminClient(config)
        topics = admin.list_topics(timeout=TIMEOUT_S).topics
        facts.topics = sorted(t for t in topics if not t.startswith("__"))
        listed = admin.list_consumer_groups(request_timeout=TIMEOUT_S).result(TIMEOUT_S).valid
        groups = sorted(g.group_id for g in listed if not g.group_id.startswith("concertops"))
        facts.groups = {g: _committed_on(bootstrap, g, facts.topics) for g in groups}
        for topic in facts.topics:
            sample = _sample(bootstrap, topic)
            if sample is not None:
                facts.samples[topic] = sample
    except Exception as exc:  # KafkaException: the broker did not answer
        facts.kafka_error = error_line(exc)


def _committed_on(bootstrap: str, group: str, topics: list[str]) -> list[str]:
    """The topics ``group`` has committed an offset on (partition 0 of each)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, "log_level": 0}
    )
    try:
        committed = consumer.committed([TopicPartition(t, 0) for t in topics], timeout=TIMEOUT_S)
        return [tp.topic for tp in committed if tp.offset >= 0]
    finally:
        consumer.close()


def _sample(bootstrap: str, topic: str) -> dict[str, Any] | None:
    """One message of ``topic`` (its newest), as JSON; None when it holds none or not JSON."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "concertops-map-discover", "log_level": 0}
    )
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT_S)
        if high <= low:
            return None
        consumer.assign([TopicPartition(topic, 0, high - 1)])
        message = consumer.poll(TIMEOUT_S)
        if message is None or message.error() is not None:
            return None
        value = json.loads(message.value() or b"null")
        return value if isinstance(value, dict) else None
    except (ValueError, RuntimeError):
        return None
    finally:
        consumer.close()


def _metrics(profile: Profile, facts: Facts) -> None:
    if not profile.metrics_urls:
        return
    import httpx

    for url in profile.metrics_urls:
        try:
            answer = httpx.get(url, timeout=TIMEOUT_S)
        except httpx.HTTPError:
            continue
        if answer.status_code == 200 and "# TYPE" in answer.text:
            facts.metrics = True
            facts.metrics_evidence = f"{url} answers in the Prometheus format"
            return
    facts.metrics = False
    facts.metrics_evidence = f"none of {', '.join(profile.metrics_urls)} answered with metrics"


def _zone(url: str, draft: Draft) -> None:
    """The zone the rows of each table with a clock pair show; the map's zone from the first that tells."""
    from concertops.contract.service_map import ServiceMap
    from concertops.sources.clock import ZoneUnreadable, read_zone
    from concertops.sources.database import open_engine

    clocked = [name for name, table in draft.data["tables"].items() if "clock" in table]
    if not clocked:
        draft.ask(
            "zone",
            "no table has a column the database writes itself (DEFAULT CURRENT_TIMESTAMP): UTC assumed",
        )
        return
    try:
        shape = msgspec.convert({**draft.data, "zone": "UTC"}, ServiceMap)
    except msgspec.ValidationError as exc:
        draft.ask("zone", f"not read: the draft is not yet a valid map ({exc})")
        return
    engine = open_engine(url, TIMEOUT_S, connections=1, read_timeout_s=TIMEOUT_S, pool_wait_s=TIMEOUT_S)
    said: list[str] = []
    try:
        with engine.connect() as conn:
            for logical in clocked:
                try:
                    reading = read_zone(conn, shape, logical)
                except ZoneUnreadable as exc:
                    said.append(f"{logical}: {exc}")
                    continue
                if not reading.rows:
                    said.append(f"{logical}: no row of the last day")
                    continue
                draft.data["zone"] = reading.implied or "UTC"
                draft.why(
                    "zone",
                    f"{reading.rows} {logical} rows of the last day: their two clocks differ by "
                    f"{draft.data['zone']}; "
                    "an IANA name (Asia/Seoul) follows daylight saving time where a fixed offset does not",
                )
                return
    finally:
        engine.dispose()
    draft.ask("zone", "; ".join(said) + ": UTC assumed")
