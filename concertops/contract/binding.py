"""A page's signal in one service's own names, through its service map.

Pages write SQL against logical names: ``{reservation}`` is the reservation table,
``{reservation.expires_at}`` its column, ``{reservation.key}`` its primary key, ``{now}`` the current time
in the zone the service writes its datetimes in (left for the source to fill at the query's instant, in the
zone the data shows: concertops.sources.clock), ``{deploy.db_pool_size}`` a deploy constant's value (a
number), ``{seat_taken_by}`` the reservation statuses that take a seat (a quoted SQL list). A Kafka signal
names a logical group and topic the same way (``group: "{expiry}"``). Text without braces is used as it
is, so a page may still name the twin's objects directly.

A signal the service cannot give (its map lacks a table, column, group or topic the signal needs; a metric
of a service that exports none) is not bound: ``bind`` says why, and the signal reads "not available on
<map>: <why>", never OK.
"""

from __future__ import annotations

import re
from dataclasses import replace

from concertops.contract.service_map import ServiceMap
from concertops.model.signals import METRIC_KINDS, Signal

_PLACEHOLDER = re.compile(r"\{([a-z_]+)(?:\.([a-z_]+))?\}")


class Unavailable(Exception):
    """Why a service cannot give a signal."""


def bind(signal: Signal, shape: ServiceMap) -> Signal | str:
    """``signal`` in ``shape``'s names, or the reason it is not available there."""
    try:
        if signal.kind in METRIC_KINDS:
            if not shape.metrics:
                raise Unavailable("the service exports no metrics")
            return signal
        if signal.above_constant:
            ceiling = float(_constant(signal.above_constant, shape))
            signal = replace(signal, warning=ceiling)
        if signal.kind == "queue":
            return _queue(signal, shape)
        if signal.kind == "redis":
            return _redis(signal, shape)
        if signal.kind == "unpublished":
            return _unpublished(signal, shape)
        if signal.kind == "http":
            return _http(signal, shape)
        if signal.kind == "sql":
            if signal.without_metrics and shape.metrics:
                raise Unavailable(signal.without_metrics)
            _possible(signal, shape)
            return replace(
                signal,
                zoned=zoned_table(signal.query, shape),
                query=render(signal.query, shape, "mysql"),
                detail=render(signal.detail, shape, "mysql"),
                sqlite_query=render(signal.sqlite_query, shape, "sqlite"),
                sqlite_detail=render(signal.sqlite_detail, shape, "sqlite"),
            )
        group = signal.group if signal.group_is_ours else _kafka(signal.group, shape, "group")
        return replace(signal, group=group, topic=_kafka(signal.topic, shape, "topic"))
    except Unavailable as why:
        return f"not available on {shape.name}: {why}"


def _possible(signal: Signal, shape: ServiceMap) -> None:
    if not signal.impossible_if_unique:
        return
    logical, _, column = signal.impossible_if_unique.partition(".")
    table = shape.table(logical)
    if table is not None and column in table.unique:
        raise Unavailable(f"its {logical}.{column} is unique, so this cannot happen there")


def render(text: str, shape: ServiceMap, dialect: str) -> str:
    """SQL with every placeholder replaced; Unavailable names the first one the map lacks."""
    return _PLACEHOLDER.sub(lambda m: _name(m.group(1), m.group(2), shape, dialect), text) if text else text


def _name(logical: str, part: str | None, shape: ServiceMap, dialect: str) -> str:
    if logical == "now" and part is None:
        return NOW  # filled by the source at the query's instant (concertops.sources.clock)
    if logical == "deploy" and part is not None:
        return _constant(part, shape)
    if logical == "seat_taken_by" and part is None:
        if not shape.seat_taken_by:
            raise Unavailable("its map does not say which reservation statuses take a seat (seat_taken_by)")
        return ", ".join(f"'{status}'" for status in shape.seat_taken_by)  # each a checked identifier
    table = shape.table(logical)
    if table is None:
        raise Unavailable(f"it has no {logical} table")
    if part is None:
        return table.table
    if part == "key":
        return table.key
    column = table.column(part)
    if column is None:
        raise Unavailable(f"its {logical} table has no {part} column")
    return column


def _constant(name: str, shape: ServiceMap) -> str:
    constant = shape.deploy_constants.get(name)
    if constant is None:
        raise Unavailable(f"its map gives no {name} (deploy_constants.{name})")
    value = constant.value
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise Unavailable(f"its deploy_constants.{name} is {value!r}, not a positive number")
    return repr(value)


NOW = "{now}"


def zoned_table(query: str, shape: ServiceMap) -> str:
    """The logical table whose clock decides a query's ``{now}``: the first it names with a clock pair,
    else the first it names; "" without one."""
    if NOW not in query:
        return ""
    named = [m.group(1) for m in _PLACEHOLDER.finditer(query) if m.group(1) in shape.tables]
    clocked = [name for name in named if (table := shape.table(name)) is not None and table.clock]
    return (clocked or named or [""])[0]


def _queue(signal: Signal, shape: ServiceMap) -> Signal:
    """A queue measure as the service stores its queue: rows of a table, or Redis sorted sets."""
    queue = shape.queue
    if queue.store == "redis":
        key = queue.active if signal.measure == "active" else queue.waiting
        assert key is not None  # the map's validation requires both keys with store redis
        measure = "oldest_score_age_s" if signal.measure == "oldest_waiting_s" else "zcard"
        return replace(signal, kind="redis", key=key.key, measure=measure)
    logical = queue.table or ""
    status = "ACTIVE" if signal.measure == "active" else "WAITING"
    where = f"FROM {{{logical}}} WHERE {{{logical}.status}} = '{status}'"
    if signal.measure == "oldest_waiting_s":
        created = f"{{{logical}.created_at}}"
        mysql = f"SELECT COALESCE(TIMESTAMPDIFF(SECOND, MIN({created}), {{now}}), 0) {where}"
        age = f"(julianday({{now}}) - julianday(MIN({created}))) * 86400"
        sqlite = f"SELECT COALESCE(CAST({age} AS INTEGER), 0) {where}"
    else:
        mysql = sqlite = f"SELECT COUNT(*) {where}"
    return replace(
        signal,
        kind="sql",
        query=render(mysql, shape, "mysql"),
        sqlite_query=render(sqlite, shape, "sqlite"),
        zoned=zoned_table(mysql, shape),
    )


def _redis(signal: Signal, shape: ServiceMap) -> Signal:
    """A lock family's keys (``key: "{seat_lock}"``) as the map names them, with the waiters' retry period."""
    match = re.fullmatch(r"\{([a-z_]+)\}", signal.key)
    if match is None:
        return signal
    lock = shape.locks.get(match.group(1))
    if lock is None:
        raise Unavailable(f"its map names no {match.group(1)} lock keys (locks.{match.group(1)})")
    retry_s = 0.0
    if signal.measure == "lock_waiters":
        retry_s = float(_constant("lock_retry_ms", shape)) / 1000
    return replace(signal, key=lock.pattern, retry_s=retry_s)


def _http(signal: Signal, shape: ServiceMap) -> Signal:
    match = re.fullmatch(r"\{([a-z_]+)\}", signal.probe)
    logical = match.group(1) if match else signal.probe
    probe = shape.probe(logical)
    if probe is None:
        raise Unavailable(f"its service map names no {logical} HTTP probe (probes.{logical})")
    return replace(signal, path=probe.path, samples=probe.samples, probe_timeout_s=probe.timeout_s)


# What a reconciliation of payments against their topic reads (concertops.sources.reconcile).
PAYMENT_COLUMNS = ("status", "paid_at", "user", "reservation", "amount")


def _unpublished(signal: Signal, shape: ServiceMap) -> Signal:
    if shape.acts.outbox:
        raise Unavailable("its outbox carries every payment's event (the outbox signals judge it)")
    payment = shape.table("payment")
    if payment is None:
        raise Unavailable("it has no payment table")
    lacking = [c for c in PAYMENT_COLUMNS if payment.column(c) is None]
    if lacking:
        raise Unavailable(f"its payment table has no {', '.join(lacking)} column")
    return replace(signal, topic=_kafka(signal.topic, shape, "topic"))


def _kafka(value: str, shape: ServiceMap, what: str) -> str:
    match = re.fullmatch(r"\{([a-z_]+)\}", value or "")
    if match is None:
        return value
    logical = match.group(1)
    if what == "group":
        group = shape.group(logical)
        if group is None:
            raise Unavailable(f"it has no {logical} consumer group")
        return group.group
    topic = shape.topic(logical)
    if topic is None:
        raise Unavailable(f"it has no {logical} topic")
    return topic
