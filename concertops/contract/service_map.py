"""The service map: where the things the runbooks read and change live in one deployed service.

A profile names its service's shape with ``service_map:`` (env ``CONCERTOPS_SERVICE_MAP``): a built-in
name (``reference``, the twin and the default; ``step10``, the production service) or the path of a YAML
file of the same form (``concertops/contract/maps/*.yml``). The map gives, under the runbooks' logical
names, the tables and columns, key types, the zone of the datetimes the service writes, the queue's store
and Redis keys, topics, consumer groups and event envelope, whether the service exports metrics, which
ways to act it offers (runtime settings, an outbox), and the constants only a deploy changes.

It is validated when loaded: an error names the file and the field. ``concertops doctor`` then holds it
against the live service (``concertops.sources.map_check``).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from concertops.contract.zones import UnknownZone, zone_of
from concertops.model.errors import ConfigError

BUILT_IN = ("reference", "step10")
DEFAULT = "reference"
Identifier = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=249)]


class Clock(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Two columns of one row: one the service writes in its zone, one the database writes itself
    (``DEFAULT CURRENT_TIMESTAMP``). Their difference on new rows shows the service's zone."""

    service: Identifier
    database: Identifier


class Table(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    table: Identifier
    key: Identifier
    key_type: Literal["int", "uuid"]
    columns: dict[str, Identifier] = {}  # logical name -> the service's column
    unique: list[Identifier] = []  # logical columns with a unique key of their own (doctor checks them)
    clock: Clock | None = None  # the zone's evidence (concertops.sources.clock)

    def column(self, logical: str) -> str | None:
        return self.columns.get(logical)

    def __post_init__(self) -> None:
        for logical in self.unique:
            if logical not in self.columns:
                raise ValueError(f"unique {logical!r} is not one of columns: {sorted(self.columns)}")


class RedisKey(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    key: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]  # ``{token}`` parts filled per item
    type: Literal["zset", "hash", "string", "set", "list"]

    @property
    def templated(self) -> bool:
        return "{" in self.key


class Queue(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    store: Literal["sql", "redis"]
    table: Identifier | None = None  # store sql: the logical table (in ``tables``) holding the tokens
    waiting: RedisKey | None = None  # store redis
    active: RedisKey | None = None
    token: RedisKey | None = None

    def __post_init__(self) -> None:
        if self.store == "sql" and not self.table:
            raise ValueError("queue.table is needed with store sql")
        if self.store == "redis" and not (self.waiting and self.active):
            raise ValueError("queue.waiting and queue.active are needed with store redis")


class Group(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    group: Name
    topic: str  # a logical topic of ``kafka.topics``


class Kafka(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    envelope: Literal["flat", "step10"]
    topics: dict[str, Name]
    groups: dict[str, Group] = {}
    # Partitions of a logical topic, for a topic concertops must create again (a broker that lost it).
    partitions: dict[str, Annotated[int, msgspec.Meta(ge=1, le=10_000)]] = {}

    def partitions_of(self, logical: str) -> int:
        return self.partitions.get(logical, 1)

    def __post_init__(self) -> None:
        for name in self.partitions:
            if name not in self.topics:
                raise ValueError(f"kafka.partitions.{name} is not one of kafka.topics: {sorted(self.topics)}")
        for name, group in self.groups.items():
            if group.topic not in self.topics:
                known = sorted(self.topics)
                raise ValueError(
                    f"kafka.groups.{name}.topic {group.topic!r} is not one of kafka.topics: {known}"
                )


class Acts(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    runtime_settings: bool = False  # a settings table the service re-reads (else: a deploy)
    outbox: bool = False
    # The service's own migrations create concertops's audit and lock tables (the twin, built with it):
    # its state lives beside its data. Any other service keeps it apart (``concertops state init``).
    state_tables: bool = False


class Constant(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A behaviour the service takes only by a deploy, under the runbooks' setting name: its value now and
    where it lives (a file, a constant, an env var), so a hand-off step can say exactly what to change."""

    value: bool | int | float | str
    where: str


class Probe(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A GET the service answers from outside, for black-box signals where it exports no metrics: its
    latency and status, over ``samples`` requests to each of the profile's ``backend_urls``."""

    path: Annotated[str, msgspec.Meta(pattern=r"^/", max_length=500)]
    samples: Annotated[int, msgspec.Meta(ge=1, le=50)] = 5
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=30)] = 3.0


class Lock(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A family of Redis lock keys, one per object (``lock:seat:*``), each taken with SET NX PX and retried
    by its waiters every ``deploy_constants.lock_retry_ms``."""

    pattern: Annotated[str, msgspec.Meta(pattern=r"^[^*\s]+\*$", max_length=200)]

    @property
    def prefix(self) -> str:
        return self.pattern[:-1]


class ServiceMap(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    zone: str
    metrics: bool
    tables: dict[str, Table]
    queue: Queue
    kafka: Kafka
    description: str = ""
    acts: Acts = msgspec.field(default_factory=Acts)
    deploy_constants: dict[str, Constant] = {}
    probes: dict[str, Probe] = {}
    locks: dict[str, Lock] = {}
    # The reservation statuses that take a seat: a schedule is sold out when every seat is named by one.
    seat_taken_by: list[Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_]{1,32}$")]] = []
    source: str = ""  # where it was loaded from (set by the loader)

    def __post_init__(self) -> None:
        try:
            zone_of(self.zone)
        except UnknownZone as exc:
            raise ValueError(str(exc)) from None
        if self.queue.store == "sql" and self.queue.table not in self.tables:
            raise ValueError(f"queue.table {self.queue.table!r} is not one of tables: {sorted(self.tables)}")

    def table(self, logical: str) -> Table | None:
        return self.tables.get(logical)

    def group(self, logical: str) -> Group | None:
        return self.kafka.groups.get(logical)

    def topic(self, logical: str) -> str | None:
        return self.kafka.topics.get(logical)

    def probe(self, logical: str) -> Probe | None:
        return self.probes.get(logical)


def maps_dir() -> Path:
    return Path(__file__).with_name("maps")


def load(value: str | None) -> ServiceMap:
    """The map a profile names (None or empty: the default); ConfigError naming the file and field."""
    return _load(value or DEFAULT)


@functools.cache
def _load(value: str) -> ServiceMap:
    import yaml

    path = maps_dir() / f"{value}.yml" if value in BUILT_IN else Path(value).expanduser()
    if value not in BUILT_IN and not path.is_file():
        raise ConfigError(
            f"service map {value!r} is neither a built-in ({', '.join(BUILT_IN)}) nor a file",
            "set service_map to a built-in name or the path of a map file",
        )
    try:
        raw = yaml.load(
            path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot read service map {path}: {exc.strerror}", "check its permissions"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"service map {path} is not valid YAML{where}", "fix the syntax") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"service map {path} must be a mapping", "see concertops/contract/maps/step10.yml")
    try:
        _entries_first(raw)
        return msgspec.convert({**raw, "source": str(path)}, ServiceMap)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"service map {path}: {_described(exc)}", _HINT) from None
    except _EntryError as exc:
        raise ConfigError(f"service map {path}: {exc}", _HINT) from None


_HINT = "fix the field (the built-in maps in concertops/contract/maps/ show every one)"


class _EntryError(ValueError):
    pass


def _entries_first(raw: dict[str, Any]) -> None:
    """Entries of the maps keyed by name, validated one by one: msgspec's path elides a dict's keys
    (``$.tables[...].key``), and the user needs to know which table."""
    kafka: dict[str, Any] = raw["kafka"] if isinstance(raw.get("kafka"), dict) else {}
    for prefix, entries, kind in (
        ("tables", raw.get("tables"), Table),
        ("kafka.groups", kafka.get("groups"), Group),
        ("deploy_constants", raw.get("deploy_constants"), Constant),
        ("probes", raw.get("probes"), Probe),
        ("locks", raw.get("locks"), Lock),
    ):
        if not isinstance(entries, dict):
            continue  # absent or not a mapping: the whole map's validation says so
        for name, entry in entries.items():
            try:
                msgspec.convert(entry, kind)
            except msgspec.ValidationError as exc:
                raise _EntryError(_described(exc, f"{prefix}.{name}")) from None


def _described(exc: msgspec.ValidationError, prefix: str = "") -> str:
    """msgspec's "Expected `str`, got `int` - at `$.queue.waiting`" as "field queue.waiting: …"."""
    message, _, where = str(exc).partition(" - at `$")
    parts = [prefix] if prefix else []
    parts += [p for p in re.split(r"[.\[\]]", where.rstrip("`")) if p and p != "..."]
    named = re.search(r"(?:unknown|missing required) field `(\w+)`", message)
    if named:
        parts.append(named.group(1))
    field = ".".join(parts)
    # Our own checks begin with the field they judge ("zone …", "kafka.groups.x.topic …").
    ours = re.match(r"^([a-z_]+(?:\.[A-Za-z0-9_]+)*)[ :]", message)
    if ours and ours.group(1).startswith(field):
        field = ours.group(1)
    return f"field {field or '(top level)'}: {message}"


def for_profile(profile: Any) -> ServiceMap:
    """The map a profile names, with the profile's ``deploy_constants`` over the map's own (a deploy
    changed one: the profile says so without editing a shared map file)."""
    return _overridden(profile.service_map or DEFAULT, tuple(getattr(profile, "deploy_constants", ())))


@functools.cache
def _overridden(value: str, overrides: tuple[tuple[str, Any], ...]) -> ServiceMap:
    shape = _load(value)
    if not overrides:
        return shape
    constants = dict(shape.deploy_constants)
    for name, value_now in overrides:
        was = constants.get(name)
        where = (
            f"the profile's deploy_constants (the map: {was.value}, {was.where})"
            if was
            else ("the profile's deploy_constants")
        )
        constants[name] = Constant(value=value_now, where=where)
    return msgspec.structs.replace(shape, deploy_constants=constants)


def describe(service_map: ServiceMap) -> dict[str, Any]:
    """What ``config show`` prints of the map."""
    return {
        "name": service_map.name,
        "source": service_map.source,
        "zone": service_map.zone,
        "metrics": service_map.metrics,
        "queue": service_map.queue.store,
        "groups": {k: g.group for k, g in service_map.kafka.groups.items()},
        "deploy_constants": sorted(service_map.deploy_constants),
    }
