"""The booking service's tables. Column names are fixed: the incident manual's SQL runs on them verbatim.

Timestamps are naive UTC; every MySQL session the project opens sets ``time_zone = '+00:00'`` so the
manual's ``NOW()`` compares like with like.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

RESERVATION_STATUSES = ("HELD", "CONFIRMED", "EXPIRED", "CANCELLED")
TOKEN_STATUSES = ("WAITING", "ACTIVE", "EXPIRED")
# SENDING: claimed by concertops's re-publish before its send, so the relay (PENDING only) never sends it too.
OUTBOX_STATUSES = ("PENDING", "SENDING", "PUBLISHED", "FAILED")

concert = sa.Table(
    "concert",
    metadata,
    sa.Column("concert_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

schedule = sa.Table(
    "concert_schedule",
    metadata,
    sa.Column("schedule_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("concert_id", sa.Integer, sa.ForeignKey("concert.concert_id"), nullable=False),
    sa.Column("starts_at", sa.DateTime, nullable=False),
    # Set when the schedule is marked sold out: reservations answer 409 before taking a lock or a connection.
    sa.Column("sold_out", sa.Boolean, nullable=False, server_default=sa.false()),
)

seat = sa.Table(
    "seat",
    metadata,
    sa.Column("seat_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("schedule_id", sa.Integer, nullable=False),
    sa.Column("seat_no", sa.Integer, nullable=False),
    sa.Column("price", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # AVAILABLE | HELD | SOLD
    sa.Column("reservation_id", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("schedule_id", "seat_no", name="uq_seat_schedule_no"),
    sa.Index("ix_seat_schedule_status", "schedule_id", "status"),
)

reservation = sa.Table(
    "reservation",
    metadata,
    sa.Column(
        "reservation_id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("schedule_id", sa.Integer, nullable=False),
    sa.Column("seat_no", sa.Integer, nullable=False),
    sa.Column("seat_id", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("held_expires_at", sa.DateTime, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_reservation_status_expires", "status", "held_expires_at"),
    sa.Index("ix_reservation_schedule_status", "schedule_id", "status"),
)

payment = sa.Table(
    "payment",
    metadata,
    sa.Column(
        "payment_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("reservation_id", sa.BigInteger, nullable=False),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("amount", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Index("ix_payment_reservation", "reservation_id"),
    sa.Index("ix_payment_created", "created_at"),
)

queue_token = sa.Table(
    "queue_token",
    metadata,
    sa.Column("token_id", sa.String(36), primary_key=True),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("activated_at", sa.DateTime, nullable=True),
    sa.Column("expires_at", sa.DateTime, nullable=True),
    sa.Index("ix_queue_token_status_created", "status", "created_at"),
    # A payment releases its user's token: without this index InnoDB locks a range of ACTIVE tokens and
    # deadlocks with the activator.
    sa.Index("ix_queue_token_user_status", "user_id", "status"),
)

outbox_event = sa.Table(
    "outbox_event",
    metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("topic", sa.String(100), nullable=False),
    sa.Column("aggregate_id", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("published_at", sa.DateTime, nullable=True),
    sa.Index("ix_outbox_status_created", "status", "created_at"),
)

# What the notification consumer has done, by event id: the proof that each event arrived once.
notification = sa.Table(
    "notification",
    metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("payment_id", sa.BigInteger, nullable=False),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

runtime_setting = sa.Table(
    "runtime_setting",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("updated_by", sa.String(100), nullable=False),
)

runtime_setting_history = sa.Table(
    "runtime_setting_history",
    metadata,
    sa.Column("history_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("version", sa.Integer, nullable=False, index=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("old_value", sa.String(200), nullable=True),
    sa.Column("new_value", sa.String(200), nullable=False),
    sa.Column("operator", sa.String(100), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("changed_at", sa.DateTime, nullable=False),
)

# One row per remediation step (and per settings change): who, where, what, with what effect.
remediation_audit = sa.Table(
    "remediation_audit",
    metadata,
    sa.Column("audit_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), nullable=False, index=True),
    sa.Column("runbook", sa.String(16), nullable=False),
    sa.Column("step", sa.String(64), nullable=False),
    sa.Column("action", sa.String(200), nullable=False),
    sa.Column("params", sa.String(2000), nullable=False),
    sa.Column("operator", sa.String(100), nullable=False),
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("profile", sa.String(100), nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime, nullable=True),
    # running | ok | failed | refused | interrupted | skipped
    sa.Column("result", sa.String(16), nullable=False),
    sa.Column("affected", sa.Integer, nullable=True),
    sa.Column("detail", sa.String(1000), nullable=False, default=""),
    sa.Column("reason", sa.String(500), nullable=False, default="", server_default=""),
    sa.Index("ix_remediation_audit_runbook_started", "runbook", "started_at"),
    # Its free text holds more than Latin-1 ("→", names, reasons) whatever the server's default charset.
    mysql_charset="utf8mb4",
)

# Who holds a runbook's apply lock (on MySQL the lock itself is GET_LOCK; this row names the holder).
remediation_lock = sa.Table(
    "remediation_lock",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(300), nullable=False),
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("acquired_at", sa.DateTime, nullable=False),
    mysql_charset="utf8mb4",
)
