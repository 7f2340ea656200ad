"""A draft service map decided from what a service's stores hold (``concertops map discover``), as YAML
whose every field carries its evidence, and whose every guess is marked ``TO CHECK`` for a person.

Pure: the facts come in (``Facts``, read by ``concertops.sources.discover``), the map's text goes out. The
runbooks' logical names are matched to the service's own by their normalised spelling (``held_expires_at``,
``expiresAt`` → ``expiresat``), each table's key and its type from the primary key, unique and status
columns from the schema, the queue and lock keys from Redis key families, topics and groups by their
names and commits, the envelope from a sample message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

TO_CHECK = "TO CHECK"

# logical table → (its names, {logical column → the spellings it goes by})
TABLES: dict[str, tuple[tuple[str, ...], dict[str, tuple[str, ...]]]] = {
    "reservation": (
        ("reservation", "reservations"),
        {
            "status": ("status",),
            "expires_at": ("expiresat", "heldexpiresat", "expireat"),
            "seat": ("seatid",),
            "schedule": ("scheduleid",),
            "user": ("userid",),
            "created_at": ("createdat",),
            "updated_at": ("updatedat",),
        },
    ),
    "payment": (
        ("payment", "payments"),
        {
            "reservation": ("reservationid",),
            "user": ("userid",),
            "amount": ("amount",),
            "status": ("status",),
            "paid_at": ("paidat",),
            "created_at": ("createdat",),
        },
    ),
    "seat": (
        ("seat", "seats"),
        {
            "schedule": ("scheduleid",),
            "number": ("seatno", "seatnumber"),
            "status": ("status",),
            "reservation": ("reservationid",),
        },
    ),
    # Only with a sold-out flag: a schedule table without one is nothing the runbooks act on.
    "schedule": (("concertschedule", "schedule", "schedules"), {"sold_out": ("soldout",)}),
    "notification": (
        ("notification", "notifications"),
        {"payment": ("paymentid",), "user": ("userid",), "created_at": ("createdat",)},
    ),
    "outbox": (
        ("outboxevent", "outbox", "outboxevents"),
        {"status": ("status",), "created_at": ("createdat",), "published_at": ("publishedat",)},
    ),
    "queue_token": (
        ("queuetoken", "queuetokens"),
        {
            "status": ("status",),
            "user": ("userid",),
            "created_at": ("createdat",),
            "activated_at": ("activatedat",),
            "expires_at": ("expiresat",),
        },
    ),
}
_SETTINGS_TABLES = ("runtimesetting", "runtimesettings", "settings", "setting")
_TAKING = ("HELD", "CONFIRMED", "RESERVED", "PAID", "BOOKED")
_INT = {"int", "bigint", "smallint", "mediumint", "tinyint"}
_TEXT = {"char", "varchar"}
_DATETIME = {"datetime", "timestamp"}
# What a deploy changes on a service with no runtime settings: the runbooks' names, the manual's values.
CONSTANTS = (
    "db_pool_size",
    "max_active_tokens",
    "queue_activation_interval_s",
    "event_activation",
    "lock_ttl_ms",
    "lock_wait_ms",
    "lock_retry_ms",
    "rate_limit_rps",
    "expiry_sweep_interval_s",
)


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str  # information_schema DATA_TYPE, lower case
    column_type: str = ""  # COLUMN_TYPE: enum('HELD',…)
    default: str = ""  # COLUMN_DEFAULT
    primary: bool = False


@dataclass
class Facts:
    """What the stores held; each ``*_error`` says why a store could not be read (then nothing of it)."""

    tables: dict[str, list[Column]] = field(default_factory=dict)
    unique: set[tuple[str, str]] = field(default_factory=set)  # (table, column) unique on its own
    statuses: dict[str, list[str]] = field(default_factory=dict)  # table → status values seen or declared
    database_error: str = ""
    redis_keys: dict[str, tuple[str, int]] = field(default_factory=dict)  # key or family → (type, count)
    redis_scanned: int = 0
    redis_error: str = ""
    topics: list[str] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)  # group → topics it committed on
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)  # topic → one message's JSON
    kafka_error: str = ""
    metrics: bool | None = None
    metrics_evidence: str = ""
    probe_path: str = ""


@dataclass
class Draft:
    """The map as data, each field's evidence (a dotted path → a comment), and what a person must decide."""

    data: dict[str, Any]
    evidence: dict[str, str] = field(default_factory=dict)
    undecided: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # stores that could not be read

    def why(self, path: str, text: str) -> None:
        self.evidence[path] = text

    def ask(self, path: str, text: str) -> None:
        self.evidence[path] = f"{TO_CHECK}: {text}"
        self.undecided.append(f"{path}: {text}")


def normal(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def decide(facts: Facts, name: str) -> Draft:
    draft = Draft({"name": name, "description": f"drafted by concertops map discover for {name}"})
    for store, error in (
        ("database", facts.database_error),
        ("redis", facts.redis_error),
        ("kafka", facts.kafka_error),
    ):
        if error:
            draft.incomplete.append(f"{store}: {error}")
    draft.data["zone"] = "UTC"
    _metrics(facts, draft)
    _tables(facts, draft)
    _queue(facts, draft)
    _kafka(facts, draft)
    _acts_and_constants(facts, draft)
    return draft


def _metrics(facts: Facts, draft: Draft) -> None:
    if facts.metrics is None:
        draft.data["metrics"] = False
        draft.ask("metrics", "no /metrics endpoint configured (metrics_urls): false until one answers")
    else:
        draft.data["metrics"] = facts.metrics
        draft.why("metrics", facts.metrics_evidence)


def _tables(facts: Facts, draft: Draft) -> None:
    by_normal = {normal(t): t for t in facts.tables}
    tables: dict[str, Any] = {}
    for logical, (names, columns) in TABLES.items():
        table = next((by_normal[n] for n in names if n in by_normal), None)
        if table is None:
            continue
        found = {normal(c.name): c for c in facts.tables[table]}
        keys = [c for c in facts.tables[table] if c.primary]
        path = f"tables.{logical}"
        if len(keys) != 1:
            draft.ask(path, f"{table} has {len(keys)} primary key columns: the runbooks need one")
            continue
        key = keys[0]
        kind = "int" if key.data_type in _INT else "uuid" if key.data_type in _TEXT else ""
        if not kind:
            draft.ask(path, f"{table}.{key.name} is a {key.data_type}: neither an integer nor a string key")
            continue
        entry: dict[str, Any] = {"table": table, "key": key.name, "key_type": kind}
        mapped = {}
        for name, spellings in columns.items():
            column = next((found[s] for s in spellings if s in found and found[s].name != key.name), None)
            if column is not None:
                mapped[name] = column.name
        if logical == "schedule" and not mapped:
            continue
        entry["columns"] = mapped
        draft.why(path, f"table {table}, primary key {key.name} ({key.data_type}); columns by name")
        unique = [name for name, column in mapped.items() if (table, column) in facts.unique]
        if unique:
            entry["unique"] = unique
            draft.why(f"{path}.unique", "a unique index of its own in information_schema.STATISTICS")
        clock = _clock(facts.tables[table], mapped)
        if clock is not None:
            entry["clock"] = {"service": clock[0], "database": clock[1]}
            if mapped.get("created_at") == clock[1] and logical == "reservation":
                # Compared with "now" in the service's zone: the service's own write time.
                mapped["created_at"] = clock[0]
            draft.why(
                f"{path}.clock",
                f"{clock[1]} is written by the database (DEFAULT {_default(facts.tables[table], clock[1])}); "
                f"{clock[0]} by the service",
            )
        tables[logical] = entry
        if logical == "reservation" and "status" in mapped:
            _taken(facts, draft, table)
    draft.data["tables"] = tables
    if not tables and not facts.database_error:
        draft.ask("tables", "no table of the runbooks' names (reservation, payment, seat, …) in the database")


def _default(columns: list[Column], name: str) -> str:
    return next((c.default for c in columns if c.name == name), "")


def _clock(columns: list[Column], mapped: dict[str, str]) -> tuple[str, str] | None:
    """(the service's column, the database's) of one row's two clocks, when the table has both."""
    datetimes = [c for c in columns if c.data_type in _DATETIME]
    database = [c for c in datetimes if "current_timestamp" in c.default.lower()]
    skipped = ("expire", "update", "publish", "activat", "modif", "delet")
    written = [
        c
        for c in datetimes
        if not c.default
        and not any(s in c.name.lower() for s in skipped)
        and c.name != mapped.get("expires_at")
    ]
    if not database or not written:
        return None
    preferred = sorted(database, key=lambda c: "creat" not in c.name.lower())[0]
    service = sorted(
        written, key=lambda c: not any(w in c.name.lower() for w in ("held", "paid", "creat", "issu"))
    )[0]
    return service.name, preferred.name


def _taken(facts: Facts, draft: Draft, table: str) -> None:
    values = facts.statuses.get(table, [])
    taking = [v for v in _TAKING if v in values]
    if taking:
        draft.data["seat_taken_by"] = taking
        draft.why("seat_taken_by", f"{table}.status takes {', '.join(values)}: these hold a seat")
    else:
        draft.data["seat_taken_by"] = ["HELD", "CONFIRMED"]
        draft.ask(
            "seat_taken_by", f"{table}.status shows none of {', '.join(_TAKING)}: the manual's statuses"
        )


def _queue(facts: Facts, draft: Draft) -> None:
    zsets = {k: v for k, v in facts.redis_keys.items() if v[0] == "zset" and not k.endswith("*")}
    waiting = next((k for k in sorted(zsets) if "wait" in k.lower()), None)
    active = next((k for k in sorted(zsets) if "activ" in k.lower()), None)
    if waiting and active:
        queue: dict[str, Any] = {
            "store": "redis",
            "waiting": {"key": waiting, "type": "zset"},
            "active": {"key": active, "type": "zset"},
        }
        token = next(
            (
                k
                for k, (kind, _n) in sorted(facts.redis_keys.items())
                if kind == "hash" and k.endswith("*") and "token" in k
            ),
            None,
        )
        if token:
            queue["token"] = {"key": token[:-1] + "{token}", "type": "hash"}
        draft.data["queue"] = queue
        draft.why("queue", f"sorted sets {waiting} and {active} in Redis (the waiting and the active tokens)")
        draft.data["tables"].pop("queue_token", None)  # the service's queue is in Redis, not in that table
    elif "queue_token" in draft.data.get("tables", {}):
        draft.data["queue"] = {"store": "sql", "table": "queue_token"}
        draft.why("queue", "no waiting/active sorted sets in Redis; the queue_token table holds the tokens")
    else:
        draft.data["queue"] = {"store": "sql", "table": "queue_token"}
        draft.ask(
            "queue", "no queue found: neither waiting/active sorted sets in Redis nor a queue_token table"
        )
    locks = {
        k: n
        for k, (kind, n) in facts.redis_keys.items()
        if kind == "string" and k.endswith("*") and "lock" in k.lower()
    }
    if locks:
        draft.data["locks"] = {_lock_name(pattern): {"pattern": pattern} for pattern in sorted(locks)}
        draft.why("locks", "; ".join(f"{p}: {n} string key(s) held now" for p, n in sorted(locks.items())))
    elif draft.data["queue"]["store"] == "redis":
        draft.ask(
            "locks", "no lock key held now (SET NX keys live seconds): add locks.seat_lock if it uses them"
        )


def _lock_name(pattern: str) -> str:
    parts = [p for p in pattern.rstrip("*").split(":") if p and p.lower() != "lock"]
    return "_".join([*parts, "lock"]) if parts else "lock"


def _kafka(facts: Facts, draft: Draft) -> None:
    topics: dict[str, str] = {}
    for topic in facts.topics:
        lowered = topic.lower()
        if "payment" in lowered and ("complet" in lowered or "paid" in lowered):
            topics.setdefault("payment_completed", topic)
        elif "expir" in lowered and "dlq" in lowered:
            topics.setdefault("expiration_dlq", topic)
        elif "expir" in lowered:
            topics.setdefault("expiration", topic)
        elif "notification" in lowered:
            topics.setdefault("notification_request", topic)
    kafka: dict[str, Any] = {"envelope": "flat", "topics": topics}
    if topics:
        draft.why("kafka.topics", f"the broker's topics: {', '.join(sorted(facts.topics))}")
    elif not facts.kafka_error:
        draft.ask("kafka.topics", "no payment, expiration or notification topic on the broker")
    logical_of = {t: name for name, t in topics.items()}
    groups: dict[str, Any] = {}
    for group, on in sorted(facts.groups.items()):
        committed = next((t for t in on if t in logical_of), None)
        if committed is None:
            continue
        logical = logical_of[committed]
        name: str = (
            "expiry"
            if logical == "expiration"
            else "notifications"
            if "notif" in group.lower()
            else "payments"
            if logical == "payment_completed"
            else re.sub(r"[^a-z0-9_]", "_", group.lower())
        )
        groups.setdefault(name, {"group": group, "topic": logical})
    kafka["groups"] = groups
    if groups:
        draft.why("kafka.groups", "each group by the topic it has committed offsets on")
    envelope = _envelope(facts, topics)
    if envelope:
        kafka["envelope"] = envelope[0]
        draft.why("kafka.envelope", envelope[1])
    elif not facts.kafka_error:
        draft.ask("kafka.envelope", "no message to read on the payment or expiration topic: flat assumed")
    draft.data["kafka"] = kafka


def _envelope(facts: Facts, topics: dict[str, str]) -> tuple[str, str] | None:
    for logical in ("payment_completed", "expiration", "notification_request"):
        sample = facts.samples.get(topics.get(logical, ""))
        if not sample:
            continue
        if "payload" in sample and ("eventId" in sample or "eventType" in sample):
            return "step10", f"a message on {topics[logical]}: {{eventId, eventType, eventTime, payload}}"
        return "flat", f"a message on {topics[logical]}: flat JSON ({', '.join(sorted(sample)[:5])})"
    return None


def _acts_and_constants(facts: Facts, draft: Draft) -> None:
    tables = {normal(t) for t in facts.tables}
    settings = next((t for t in facts.tables if normal(t) in _SETTINGS_TABLES), None)
    outbox = "outbox" in draft.data.get("tables", {})
    draft.data["acts"] = {"runtime_settings": settings is not None, "outbox": outbox}
    draft.why(
        "acts",
        f"runtime settings: {'table ' + settings if settings else 'no settings table'}; "
        f"outbox: {'the outbox table' if outbox else 'no outbox table'}",
    )
    if settings is not None or not tables:
        return
    from concertops.contract.settings import BY_NAME

    constants: dict[str, Any] = {}
    for name in CONSTANTS:
        spec = BY_NAME[name]
        constants[name] = {
            "value": spec.legacy,
            "where": f"{TO_CHECK}: not in the stores; the manual's value",
        }
    draft.data["deploy_constants"] = constants
    draft.ask(
        "deploy_constants",
        "the service changes these only by a deploy, and its stores do not show them: the values are the "
        "manual's; write each value and where it lives",
    )
    if facts.probe_path:
        draft.data["probes"] = {"availability": {"path": facts.probe_path, "samples": 5}}
        draft.why("probes", "given with --probe: a GET that reads the database through the service's pool")
    else:
        draft.ask(
            "probes", "a GET that reads the database (map discover --probe PATH): none, A-1/B-3 probes off"
        )


def render(draft: Draft) -> str:
    """The draft as YAML, each field's evidence as a comment above it."""
    head = [
        f"# A draft service map for {draft.data['name']}, by `concertops map discover` from its stores.",
        "# Hold it against the service with `concertops doctor`; every line marked TO CHECK needs a person.",
    ]
    if draft.incomplete:
        head.append("# INCOMPLETE: " + "; ".join(draft.incomplete))
    return "\n".join(head + _lines(draft.data, draft.evidence, "", 0)) + "\n"


def _lines(data: dict[str, Any], evidence: dict[str, str], prefix: str, depth: int) -> list[str]:
    out: list[str] = []
    pad = "  " * depth
    for key, value in data.items():
        path = f"{prefix}{key}"
        if path in evidence:
            out.append(f"{pad}# {evidence[path]}")
        if (
            isinstance(value, dict)
            and value
            and (depth == 0 or any(isinstance(v, dict) for v in value.values()))
        ):
            out.append(f"{pad}{key}:")
            out.extend(_lines(value, evidence, f"{path}.", depth + 1))
        else:
            out.append(f"{pad}{key}: {_flow(value)}")
    return out


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    return (
        text
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", text) and text not in ("true", "false", "null")
        else json.dumps(text)
    )
