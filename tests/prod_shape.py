"""The production service's shape, built from ../shared/production-service.md: its database (camelCase
columns, UUID string keys, no seat status, no outbox), its Redis queue keys and its consumer groups."""

from __future__ import annotations

import uuid

import pymysql

from concertops.devstack.components import HOST, MARIADB_PORT

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
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
        consumer.close()
