"""``concertops doctor``: the service map held against the live service, one line per thing missing.

Tables and columns from ``information_schema``, key types from the columns' data types; Redis keys' types
(a key that does not exist now is only noted: an empty queue has no key); topics and consumer groups from
the broker. Each store is one ``SourceCheck`` row, failing when anything the map names is not there.
"""

from __future__ import annotations

import time
from typing import Any

from concertops.config import Profile
from concertops.contract.service_map import ServiceMap
from concertops.redact import error_line, redact_url
from concertops.sources.health import SourceCheck

# The statuses the runbooks read and write by name, per logical table: an enum without one of them makes a
# signal count nothing, or a step's UPDATE fail.
RUNBOOK_STATUSES = {"reservation": ("HELD", "EXPIRED"), "payment": ("SUCCESS",)}
_KEY_TYPES = {"int": {"int", "bigint", "smallint", "mediumint", "tinyint"}, "uuid": {"char", "varchar"}}
TIMEOUT_S = 3.0


def database_gaps(url: str, shape: ServiceMap, timeout_s: float = 0.0) -> tuple[list[str], list[str]]:
    """(what is missing, what was found) of the map's tables, columns and key types."""

    from concertops.sources.database import open_engine

    wait = timeout_s or TIMEOUT_S
    engine = open_engine(url, wait, connections=1, read_timeout_s=wait, pool_wait_s=wait)
    missing: list[str] = []
    try:
        with engine.connect() as conn:
            enums: dict[tuple[str, str], list[str]] = {}
            if conn.dialect.name == "sqlite":  # the embedded default: no information_schema
                columns, unique = _sqlite_columns(conn)
            else:
                columns, enums = _mysql_columns(conn)
                unique = unique_columns(conn)
    finally:
        engine.dispose()
    for logical, table in shape.tables.items():
        where = f"tables.{logical}"
        found = columns.get(table.table)
        if found is None:
            missing.append(f"table {table.table} missing ({where}.table)")
            continue
        if table.key not in found:
            missing.append(f"column {table.table}.{table.key} missing ({where}.key)")
        elif found[table.key] not in _KEY_TYPES[table.key_type]:
            missing.append(
                f"key {table.table}.{table.key} is {found[table.key]}, the map says {table.key_type} "
                f"({where}.key_type)"
            )
        for name, column in table.columns.items():
            if column not in found:
                missing.append(f"column {table.table}.{column} missing ({where}.columns.{name})")
            elif name in table.unique and (table.table, column) not in unique:
                missing.append(f"column {table.table}.{column} has no unique key of its own ({where}.unique)")
        if table.clock is not None:
            for side in ("service", "database"):
                column = getattr(table.clock, side)
                if column not in found:
                    missing.append(f"column {table.table}.{column} missing ({where}.clock.{side})")
    missing += status_gaps(shape, enums)
    return missing, [f"{len(shape.tables)} table(s)"]


def status_gaps(shape: ServiceMap, enums: dict[tuple[str, str], list[str]]) -> list[str]:
    """The statuses the runbooks and the map's ``seat_taken_by`` name that a status enum does not hold."""
    gaps = []
    for logical, names in RUNBOOK_STATUSES.items():
        table = shape.table(logical)
        column = table.column("status") if table else None
        if table is None or column is None or (table.table, column) not in enums:
            continue  # no status column, or not an enum (a string column takes any value)
        values = enums[(table.table, column)]
        wanted = [*names, *(shape.seat_taken_by if logical == "reservation" else ())]
        for status in dict.fromkeys(wanted):
            if status not in values:
                field = (
                    "seat_taken_by" if status in shape.seat_taken_by else f"tables.{logical}.columns.status"
                )
                gaps.append(
                    f"status {status} is not one of {table.table}.{column} ({', '.join(values)}) ({field})"
                )
    return gaps


def _mysql_columns(conn: Any) -> tuple[dict[str, dict[str, str]], dict[tuple[str, str], list[str]]]:
    """Each table's columns with their types, and the values of each enum column."""
    import sqlalchemy as sa

    columns: dict[str, dict[str, str]] = {}
    enums: dict[tuple[str, str], list[str]] = {}
    for table, column, kind, full in conn.execute(
        sa.text(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE"
            " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
        )
    ):
        columns.setdefault(str(table), {})[str(column)] = str(kind).lower()
        if str(full).lower().startswith("enum("):
            enums[(str(table), str(column))] = [v.strip("'") for v in str(full)[5:-1].split(",")]
    return columns, enums


def _sqlite_columns(conn: Any) -> tuple[dict[str, dict[str, str]], set[tuple[str, str]]]:
    """SQLite's tables, columns (types in MySQL's words for the key check) and one-column unique keys."""
    import sqlalchemy as sa

    inspector = sa.inspect(conn)
    columns: dict[str, dict[str, str]] = {}
    unique: set[tuple[str, str]] = set()
    for table in inspector.get_table_names():
        for column in inspector.get_columns(table):
            kind = str(column["type"]).lower().split("(")[0]
            columns.setdefault(table, {})[column["name"]] = {"integer": "int"}.get(kind, kind)
        keys = [c["column_names"] for c in inspector.get_unique_constraints(table)]
        keys += [i["column_names"] for i in inspector.get_indexes(table) if i.get("unique")]
        unique.update((table, str(k[0])) for k in keys if len(k) == 1)
    return columns, unique


def unique_columns(conn: Any) -> set[tuple[str, str]]:
    """(table, column) of every column with a unique index of its own (one column, NON_UNIQUE = 0)."""
    import sqlalchemy as sa

    return {
        (str(table), str(column))
        for table, column in conn.execute(
            sa.text(
                "SELECT TABLE_NAME, MAX(COLUMN_NAME) FROM information_schema.STATISTICS"
                " WHERE TABLE_SCHEMA = DATABASE() AND NON_UNIQUE = 0"
                " GROUP BY TABLE_NAME, INDEX_NAME HAVING COUNT(*) = 1"
            )
        )
    }


def redis_gaps(url: str, shape: ServiceMap, timeout_s: float = 0.0) -> tuple[list[str], list[str]]:
    import redis

    keys = [(name, getattr(shape.queue, name)) for name in ("waiting", "active", "token")]
    keys = [(name, key) for name, key in keys if key is not None and not key.templated]
    wait = timeout_s or TIMEOUT_S
    client = redis.Redis.from_url(url, socket_timeout=wait, socket_connect_timeout=wait)
    missing, notes = [], []
    for name, key in keys:
        answer = client.type(key.key)
        kind = answer.decode() if isinstance(answer, bytes) else str(answer)
        if kind == "none":
            notes.append(f"{key.key} absent (empty now)")
        elif kind != key.type:
            missing.append(f"key {key.key} is a {kind}, the map says {key.type} (queue.{name}.type)")
        else:
            notes.append(f"{key.key} {kind} of {_size(client, key.key, kind)}")
    return missing, notes


def _size(client: Any, key: str, kind: str) -> int:
    return int(
        {"zset": client.zcard, "hash": client.hlen, "set": client.scard, "list": client.llen}.get(
            kind, lambda _k: 1
        )(key)
    )


def kafka_gaps(bootstrap: str, shape: ServiceMap) -> tuple[list[str], list[str]]:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {"bootstrap.servers": bootstrap, "socket.timeout.ms": int(TIMEOUT_S * 1000), "log_level": 0}
    )
    topics = admin.list_topics(timeout=TIMEOUT_S).topics
    groups = {
        g.group_id for g in admin.list_consumer_groups(request_timeout=TIMEOUT_S).result(TIMEOUT_S).valid
    }
    missing = [
        f"topic {topic} missing (kafka.topics.{name})"
        for name, topic in shape.kafka.topics.items()
        if topic not in topics
    ]
    missing += [
        f"consumer group {g.group} missing (kafka.groups.{name})"
        for name, g in shape.kafka.groups.items()
        if g.group not in groups
    ]
    return missing, [f"{len(shape.kafka.topics)} topic(s), {len(shape.kafka.groups)} group(s)"]


def zone_gaps(url: str, shape: ServiceMap, timeout_s: float = 0.0) -> tuple[list[str], list[str]]:
    """Per table with a clock pair, the zone its recent rows show next to the map's."""
    from concertops.sources.clock import ZoneUnreadable, read_zone
    from concertops.sources.database import open_engine

    wait = timeout_s or TIMEOUT_S
    engine = open_engine(url, wait, connections=1, read_timeout_s=wait, pool_wait_s=wait)
    missing: list[str] = []
    found: list[str] = []
    try:
        with engine.connect() as conn:
            for logical, table in shape.tables.items():
                if table.clock is None:
                    continue
                try:
                    reading = read_zone(conn, shape, logical)
                except ZoneUnreadable as exc:
                    missing.append(f"{logical}: {exc}")
                    continue
                if reading.contradicted:
                    missing.append(
                        f"{logical}: the rows say {reading.implied}, the map says {shape.zone} (zone): "
                        f"{reading.rows} rows of the last day, {table.clock.service} against "
                        f"{table.clock.database}"
                    )
                elif reading.rows:
                    found.append(
                        f"{logical}: the rows agree with {shape.zone} ({reading.rows} of the last day)"
                    )
                else:
                    found.append(f"{logical}: no row of the last day, the zone {shape.zone} not checked")
    finally:
        engine.dispose()
    if not found and not missing:
        found.append(f"zone {shape.zone} not checked: no table has a clock pair (tables.<name>.clock)")
    return missing, found


def checks(profile: Profile, shape: ServiceMap) -> list[tuple[str, str, Any]]:
    """(row name, target, probe) for each configured store; each probe returns (missing, found)."""
    planned: list[tuple[str, str, Any]] = []
    if profile.database_url:
        planned.append(
            ("map: database", profile.database_url, lambda: database_gaps(profile.database_url or "", shape))
        )
        planned.append(
            ("map: zone", profile.database_url, lambda: zone_gaps(profile.database_url or "", shape))
        )
    if profile.redis_url and shape.queue.store == "redis":
        planned.append(("map: redis", profile.redis_url, lambda: redis_gaps(profile.redis_url or "", shape)))
    if profile.kafka_bootstrap_servers:
        servers = profile.kafka_bootstrap_servers
        planned.append(("map: kafka", servers, lambda: kafka_gaps(servers, shape)))
    return planned


def run(profile: Profile, shape: ServiceMap, answered: set[str]) -> list[SourceCheck]:
    """One row per store that ``answered``: the map's things there, or one line per thing missing."""
    rows = []
    for name, target, probe in checks(profile, shape):
        store = {"zone": "database"}.get(name.removeprefix("map: "), name.removeprefix("map: "))
        if store not in answered:
            continue
        started = time.monotonic()
        try:
            missing, found = probe()
        except Exception as exc:  # the store did not answer: the source's own row says why
            missing, found = [f"not checked: {error_line(exc)}"], []
        detail = "; ".join(missing) if missing else f"map {shape.name}: " + "; ".join(found)
        fix = f"fix the service map {shape.source} (the field named) or the service" if missing else ""
        duration = round(time.monotonic() - started, 3)
        rows.append(SourceCheck(name, redact_url(target), not missing, detail, fix, duration))
    return rows
