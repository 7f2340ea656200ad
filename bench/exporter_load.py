"""The database load of `concertops exporter` on the production shape: every SQL statement of a cycle of
its sql and kafka sources (the reconciliation reads the payment table), counted and timed, on a database of
N reservations and N payments (mostly CONFIRMED and SUCCESS, as a service that has run a while has them;
40 overdue HELD holds; the payments spread over the last 30 days).

It runs the exporter's own source loops for ``--cycles`` cycles back to back (no waiting between them) and
reports the statements per cycle, hence per minute at the default 15 s interval, and the longest one. Then
again with ``--index`` created, to show what an index on ``payment(status, paidAt)`` does for the
reconciliation. Needs MariaDB (its Sequence engine seeds the rows) and the devstack's broker.

    .venv/bin/python bench/exporter_load.py [--rows 2000000] [--cycles 3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pymysql
import sqlalchemy as sa

from concertops.config import Profile
from concertops.engine.exporter import Exporter
from concertops.runbooks.registry import all_runbooks

RESULTS = Path(__file__).parent / "results"
DATABASE = "concertops_bench_exporter"
BOOTSTRAP = "127.0.0.1:19092"
INDEX = "CREATE INDEX concertops_payment_status_paid ON payment (status, paidAt)"
# Production's tables as its init-db.sql has them (the two the exporter reads).
SCHEMA = (
    "CREATE TABLE reservation (reservationId varchar(36) PRIMARY KEY, userId varchar(36) NOT NULL,"
    " seatId varchar(36) NOT NULL, status enum('HELD','CONFIRMED','CANCELLED','EXPIRED') NOT NULL,"
    " heldAt datetime NOT NULL, expiresAt datetime NOT NULL,"
    " createdAt datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), KEY (userId), KEY (seatId), KEY (status))",
    "CREATE TABLE payment (paymentId varchar(36) PRIMARY KEY, reservationId varchar(36) NOT NULL UNIQUE,"
    " userId varchar(36) NOT NULL, amount decimal(10,2) NOT NULL,"
    " status enum('SUCCESS','FAILED','CANCELLED') NOT NULL, paidAt datetime NULL,"
    " createdAt datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), KEY (userId))",
    "CREATE TABLE seat (seatId varchar(36) PRIMARY KEY, scheduleId varchar(36) NOT NULL, seatNo int NOT NULL,"
    " createdAt datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))",
)


def seed(url: str, rows: int) -> float:
    started = time.monotonic()
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        cur.execute(f"CREATE DATABASE `{DATABASE}`")
        cur.execute(f"USE `{DATABASE}`")
        for statement in SCHEMA:
            cur.execute(statement)
        # Keys in order of seq (a key's randomness does not change a status-index count or a scan).
        cur.execute(
            "INSERT INTO reservation (reservationId, userId, seatId, status, heldAt, expiresAt)"
            " SELECT LPAD(seq, 36, '0'), MD5(seq), MD5(-seq), IF(seq % 10 = 0, 'EXPIRED', 'CONFIRMED'),"
            " UTC_TIMESTAMP() - INTERVAL seq SECOND,"
            f" UTC_TIMESTAMP() - INTERVAL seq SECOND + INTERVAL 5 MINUTE FROM seq_1_to_{rows}"
        )
        cur.execute(
            "INSERT INTO reservation (reservationId, userId, seatId, status, heldAt, expiresAt)"
            " SELECT CONCAT('held-', seq), MD5(seq), MD5(seq), 'HELD', UTC_TIMESTAMP() - INTERVAL 15 MINUTE,"
            " UTC_TIMESTAMP() - INTERVAL 10 MINUTE FROM seq_1_to_40"
        )
        cur.execute(
            "INSERT INTO payment (paymentId, reservationId, userId, amount, status, paidAt)"
            " SELECT LPAD(seq, 36, '0'), LPAD(seq, 36, '0'), MD5(seq), 50000, 'SUCCESS',"
            f" UTC_TIMESTAMP() - INTERVAL (seq * 2592000 DIV {rows}) SECOND FROM seq_1_to_{rows}"
        )
        cur.execute("ANALYZE TABLE reservation, payment")
    admin.close()
    return time.monotonic() - started


def measure(url: str, cycles: int) -> dict[str, object]:
    profile = Profile(name="bench", database_url=url, kafka_bootstrap_servers=BOOTSTRAP, service_map="step10")
    exporter = Exporter(profile, all_runbooks(), interval_s=15.0, deadline_s=60.0)
    statements: list[tuple[float, str]] = []

    def before(_conn, _cursor, statement, _params, context, _many):  # type: ignore[no-untyped-def]
        context._bench_started = time.monotonic()

    def after(_conn, _cursor, statement, _params, context, _many):  # type: ignore[no-untyped-def]
        statements.append((time.monotonic() - context._bench_started, " ".join(statement.split())[:160]))

    sa.event.listen(sa.Engine, "before_cursor_execute", before)
    sa.event.listen(sa.Engine, "after_cursor_execute", after)
    try:
        for loop_name in ("sql", "kafka"):
            loop = exporter.loops[loop_name]
            loop.measure()  # a first cycle opens the pools and checks privileges
        statements.clear()
        for _ in range(cycles):
            for loop_name in ("sql", "kafka"):
                exporter.loops[loop_name].measure()
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", before)
        sa.event.remove(sa.Engine, "after_cursor_execute", after)
        for loop in exporter.loops.values():
            loop._close(loop._persistent)
    per_cycle = len(statements) / cycles
    longest = max(statements)
    reconciliation = max(t for t, text in statements if "AS paid_at" in text)
    return {
        "reconciliation_longest_ms": round(reconciliation * 1000, 1),
        "statements_per_cycle": per_cycle,
        "statements_per_minute_at_15s": per_cycle * 4,
        "longest_ms": round(longest[0] * 1000, 1),
        "longest": longest[1],
        "top3": [(round(s * 1000, 1), text) for s, text in sorted(statements, reverse=True)[:3]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()
    url = f"mysql+pymysql://root@127.0.0.1:3306/{DATABASE}"
    seeded = seed(url, args.rows)
    without = measure(url, args.cycles)
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=DATABASE)
    with admin.cursor() as cur:
        cur.execute(INDEX)
    admin.close()
    indexed = measure(url, args.cycles)
    result = {"rows": args.rows, "seed_s": round(seeded, 1), "without_index": without, "with_index": indexed}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"exporter_load_{args.rows}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
    admin.close()


if __name__ == "__main__":
    main()
