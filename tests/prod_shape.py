"""The production service's shape, built from ../shared/production-service.md: its database (camelCase
columns, UUID string keys, no seat status, no outbox), its Redis queue keys and its consumer groups."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pymysql

from concertops.devstack.components import HOST, MARIADB_PORT, REDIS_PORT

SCHEMA = (
    "CREATE TABLE concert (concertId varchar(36) PRIMARY KEY, title varchar(255) NOT NULL,"
    " description text, createdAt datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))",
    "CREATE TABLE concert_schedule (scheduleId varchar(36) PRIMARY KEY, concertId varchar(36) NOT NULL,"
    " concertDate date NOT NULL, createdAt datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))",
    "CREATE TABLE seat (seatId varchar(36) PRIMARY KEY, scheduleId varchar(36) NOT NULL, seatNo int NOT NULL,"
    " createdAt datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), UNIQUE KEY (scheduleId, seatNo))",
    "CREATE TABLE reservation (reservationId varchar(36) PRIMARY KEY, userId varchar(36) NOT NULL,"
    " seatId varchar(36) NOT NULL, status enum('HELD','CONFIRMED','CANCELLED','EXPIRED') NOT NULL,"
    " heldAt datetime NOT NULL, expiresAt datetime NOT NULL,"
    " createdAt datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
    " KEY (userId), KEY (seatId), KEY (status))",
    "CREATE TABLE payment (paymentId varchar(36) PRIMARY KEY, reservationId varchar(36) NOT NULL UNIQUE,"
    " userId varchar(36) NOT NULL, amount decimal(10,2) NOT NULL,"
    " status enum('SUCCESS','FAILED','CANCELLED') NOT NULL, paidAt datetime NULL,"
    " createdAt datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), KEY (userId))",
    "CREATE TABLE user_point_balance (userId varchar(36) PRIMARY KEY, balance decimal(12,2) NOT NULL,"
    " updatedAt datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))",
    "CREATE TABLE point_tx (txId varchar(36) PRIMARY KEY, userId varchar(36) NOT NULL,"
    " txType enum('CHARGE','PAYMENT','REFUND') NOT NULL, amount decimal(12,2) NOT NULL,"
    " balanceAfter decimal(12,2) NOT NULL, refPaymentId varchar(36) NULL,"
    " createdAt datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))",
    # In the schema, unused: the queue lives in Redis.
    "CREATE TABLE queue_token (tokenId varchar(36) PRIMARY KEY, userId varchar(36) NOT NULL,"
    " tokenValue varchar(255) NOT NULL, status varchar(16) NOT NULL, issuedAt datetime NOT NULL,"
    " expiresAt datetime NOT NULL)",
)
GROUPS = {
    "reservation.expiration": "reservation-expiration-group",
    "payment.completed": "data-platform-service-group",
    "notification.request": "notification-service-group",
}


def production_env(url: str, bootstrap: str, redis_db: int, state: Path) -> dict[str, str]:
    """A concertops environment for a production-shape database: step10's map, no Prometheus, no backend
    URLs, concertops's state in a local file at ``state``."""
    return {
        "CONCERTOPS_DATABASE_URL": url,
        "CONCERTOPS_REDIS_URL": f"redis://{HOST}:{REDIS_PORT}/{redis_db}",
        "CONCERTOPS_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CONCERTOPS_PROMETHEUS_URL": "",
        "CONCERTOPS_METRICS_URLS": "",
        "CONCERTOPS_SERVICE_MAP": "step10",
        "CONCERTOPS_STATE_URL": f"sqlite:///{state}",
        "CONCERTOPS_BACKEND_URLS": "",
    }


def create_database() -> tuple[str, str]:
    """A fresh database of production's shape; (its name, a concertops database URL for it)."""
    name = f"concertops_step10_{uuid.uuid4().hex[:8]}"
    admin = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        cur.execute(f"USE `{name}`")
        for statement in SCHEMA:
            cur.execute(statement)
    admin.close()
    return name, f"mysql+pymysql://root@{HOST}:{MARIADB_PORT}/{name}"


def alive(conn: pymysql.Connection) -> bool:
    """Whether a MySQL connection is still open (not killed), without reconnecting it."""
    try:
        conn.ping(reconnect=False)
    except pymysql.err.Error:
        return False
    return True


def drop_database(name: str) -> None:
    admin = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


def create_topics_and_groups(bootstrap: str) -> None:
    """Its topics, and its consumer groups as a first commit of each leaves them (kafkajs joins them)."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=10).topics
    missing = [NewTopic(t, 1, 1) for t in GROUPS if t not in existing]
    for future in admin.create_topics(missing).values() if missing else ():
        future.result(10)
    for topic, group in GROUPS.items():
        # Caught up: the twin, running in the same test session, writes to topics of the same names
        # (reservation.expiration, payment.completed); its messages up to now are not this group's lag.
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.commit(offsets=[TopicPartition(topic, 0, max(0, high))], asynchronous=False)
        consumer.close()


def seed_holds(url: str, overdue: int = 40, not_due: int = 5, zone_offset_s: int = 0) -> None:
    """``overdue`` holds 10 minutes past their expiry and ``not_due`` due in 3, on seats of production's
    shape (UUID keys). The service writes heldAt/expiresAt in its process's zone (UTC, as the deployment
    runs, unless ``zone_offset_s``); the database writes createdAt in its own (UTC), at the hold's instant."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    schedule = str(uuid.uuid4())
    with engine.begin() as conn:
        for i in range(overdue + not_due):
            seat = str(uuid.uuid4())
            conn.execute(
                sa.text("INSERT INTO seat (seatId, scheduleId, seatNo) VALUES (:s, :sc, :n)"),
                {"s": seat, "sc": schedule, "n": i + 1},
            )
            minutes = -10 if i < overdue else 3
            conn.execute(
                sa.text(
                    "INSERT INTO reservation"
                    " (reservationId, userId, seatId, status, heldAt, expiresAt, createdAt) VALUES"
                    " (:r, :u, :s, 'HELD',"
                    " UTC_TIMESTAMP() - INTERVAL 5 MINUTE + INTERVAL :m MINUTE + INTERVAL :z SECOND,"
                    " UTC_TIMESTAMP() + INTERVAL :m MINUTE + INTERVAL :z SECOND,"
                    " UTC_TIMESTAMP(6) - INTERVAL 5 MINUTE + INTERVAL :m MINUTE)"
                ),
                {"r": str(uuid.uuid4()), "u": str(uuid.uuid4()), "s": seat, "m": minutes, "z": zone_offset_s},
            )
    engine.dispose()


def seed_tokens(client: Any, waiting: int = 260, active: int = 1, expired: tuple[int, ...] = ()) -> list[str]:
    """Production's queue keys: ``waiting`` WAITING tokens issued a second apart up to 30 s ago (the oldest
    first), each with its hash as the service writes it; ``active`` ACTIVE ones. The tokens at the
    positions in ``expired`` have an ``expiresAt`` in the past (their clean-up has not run yet).
    Returns the WAITING token values, oldest first."""
    from datetime import UTC, datetime, timedelta

    seconds, _micros = client.time()
    now_ms = seconds * 1000
    values = [f"tok-{i:03d}-{uuid.uuid4().hex[:8]}" for i in range(waiting)]
    pipe = client.pipeline()
    for i, value in enumerate(values):
        issued = now_ms - 30_000 - (waiting - i) * 10
        expires = datetime.fromtimestamp(issued / 1000, UTC) + timedelta(minutes=-1 if i in expired else 10)
        pipe.zadd("queue:waiting", {value: issued})
        pipe.hset(
            f"queue:token:{value}",
            mapping={
                "tokenId": str(uuid.uuid4()),
                "userId": str(uuid.uuid4()),
                "tokenValue": value,
                "queuePosition": i + 1,
                "status": "WAITING",
                "issuedAt": datetime.fromtimestamp(issued / 1000, UTC).isoformat(),
                "expiresAt": expires.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            },
        )
        pipe.expire(f"queue:token:{value}", 600)
    for i in range(active):
        pipe.zadd("queue:active", {f"active-{i}": now_ms - 5_000})
    pipe.execute()
    return values


def seed_payments(
    url: str, bootstrap: str, count: int = 50, missing: int = 20, zone_offset_s: int = 0
) -> tuple[list[str], list[str]]:
    """``count`` SUCCESS payments paid 10 minutes ago, each of a CONFIRMED reservation; the events of all
    but ``missing`` of them are on ``payment.completed`` in production's envelope (keyed by userId).
    Returns (the payment ids whose events are on the topic, those whose are missing)."""
    import json
    from datetime import UTC, datetime

    import sqlalchemy as sa
    from confluent_kafka import Producer

    engine = sa.create_engine(url)
    producer = Producer({"bootstrap.servers": bootstrap})
    present: list[str] = []
    absent: list[str] = []
    with engine.begin() as conn:
        for i in range(count):
            payment, reservation, user, seat = (str(uuid.uuid4()) for _ in range(4))
            conn.execute(
                sa.text(
                    "INSERT INTO reservation"
                    " (reservationId, userId, seatId, status, heldAt, expiresAt, createdAt) VALUES"
                    " (:r, :u, :s, 'CONFIRMED', UTC_TIMESTAMP() - INTERVAL 12 MINUTE + INTERVAL :z SECOND,"
                    " UTC_TIMESTAMP() - INTERVAL 7 MINUTE + INTERVAL :z SECOND,"
                    " UTC_TIMESTAMP(6) - INTERVAL 12 MINUTE)"
                ),
                {"r": reservation, "u": user, "s": seat, "z": zone_offset_s},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO payment"
                    " (paymentId, reservationId, userId, amount, status, paidAt, createdAt)"
                    " VALUES (:p, :r, :u, 50000, 'SUCCESS',"
                    " UTC_TIMESTAMP() - INTERVAL 10 MINUTE + INTERVAL :i SECOND + INTERVAL :z SECOND,"
                    " UTC_TIMESTAMP(6) - INTERVAL 10 MINUTE + INTERVAL :i SECOND)"
                ),
                {"p": payment, "r": reservation, "u": user, "i": i, "z": zone_offset_s},
            )
            if i % (count // missing) == 0 and len(absent) < missing:
                absent.append(payment)
                continue
            present.append(payment)
            body = {
                "eventId": f"evt_{int(datetime.now(UTC).timestamp() * 1000)}",
                "eventType": "payment.completed",
                "eventTime": datetime.now(UTC).isoformat(),
                "payload": {
                    "paymentId": payment,
                    "userId": user,
                    "reservationId": reservation,
                    "seatId": seat,
                    "amount": 50000,
                },
            }
            producer.produce("payment.completed", key=user, value=json.dumps(body))
    producer.flush(10)
    engine.dispose()
    return present, absent


def idle_connections(database: str, user: str, password: str, count: int) -> list[Any]:
    """``count`` open, idle connections of ``user`` (created, with ALL on ``database``), as a pool keeps
    them."""
    admin = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'")
        cur.execute(f"GRANT ALL ON `{database}`.* TO '{user}'@'%'")
    admin.close()
    return [
        pymysql.connect(host=HOST, port=MARIADB_PORT, user=user, password=password, database=database)
        for _ in range(count)
    ]


def drop_user(user: str) -> None:
    admin = pymysql.connect(host=HOST, port=MARIADB_PORT, user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
    admin.close()
