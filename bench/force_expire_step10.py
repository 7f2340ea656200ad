"""Force-expiring overdue holds on the production shape (UUID string keys, camelCase columns, no seat
status): concertops' keyset batches against the manual's single UPDATE, in the same run.

For each method: the same table of N overdue HELD holds plus 50,000 CONFIRMED ones (random v4-like UUID
keys, copied from one seeded template so both start alike), the method, and a light concurrent load of the
service's own statements at about 20 per second: a new hold inserted, and a confirmation (``UPDATE … SET
status = 'CONFIRMED' WHERE reservationId = ?``) of a hold that is not overdue. The load's p95 is compared
with the same load on the idle table. Needs only the local MariaDB (its Sequence engine seeds the rows).

    .venv/bin/python bench/force_expire_step10.py [--rows 200000] [--batch 5000] [--batch-ms 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pymysql
import sqlalchemy as sa
from batch_stats import batch_stats

from concertops.config import Profile
from concertops.contract import service_map
from concertops.engine.action_api import Context
from concertops.engine.force_expire import ForceExpire
from concertops.model.findings import Step
from concertops.runbooks import catalogue
from concertops.sources.database import open_engine

RESULTS = Path(__file__).parent / "results"
DATABASE = "concertops_bench_step10"
# The manual's statement in production's names.
MANUAL_UPDATE = (
    "UPDATE reservation SET status = 'EXPIRED' WHERE status = 'HELD' AND expiresAt < UTC_TIMESTAMP()"
)
# Production's reservation table (TypeORM's DDL as its init-db.sql has it).
RESERVATION = (
    "CREATE TABLE {name} (reservationId varchar(36) PRIMARY KEY, userId varchar(36) NOT NULL,"
    " seatId varchar(36) NOT NULL, status enum('HELD','CONFIRMED','CANCELLED','EXPIRED') NOT NULL,"
    " heldAt datetime NOT NULL, expiresAt datetime NOT NULL,"
    " createdAt datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), KEY (userId), KEY (seatId), KEY (status))"
)
# A random (v4-like) UUID from the 32 hex digits of column {h}: production's keys come from randomUUID().
_RANDOM_UUID = (
    "LOWER(CONCAT_WS('-', LEFT({h}, 8), SUBSTR({h}, 9, 4), CONCAT('4', SUBSTR({h}, 14, 3)),"
    " SUBSTR({h}, 17, 4), SUBSTR({h}, 21, 12)))"
)
CONFIRMED = 50_000


def fresh_database() -> str:
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        cur.execute(f"CREATE DATABASE `{DATABASE}`")
    conn.close()
    return f"mysql+pymysql://root@127.0.0.1:3306/{DATABASE}"


def seed_template(engine: sa.Engine, rows: int) -> None:
    def rows_of(count: int, status: str, expires: str) -> str:
        def uuid_of(column: str) -> str:
            return _RANDOM_UUID.format(h=column)

        return (
            # createdAt as the database would have written it at heldAt: the zone reads UTC.
            "INSERT INTO reservation_seed"
            " (reservationId, userId, seatId, status, heldAt, expiresAt, createdAt)"
            f" SELECT {uuid_of('a')}, {uuid_of('b')}, {uuid_of('c')}, '{status}',"
            f" {expires} - INTERVAL 5 MINUTE, {expires}, {expires} - INTERVAL 5 MINUTE"
            f" FROM (SELECT MD5(CONCAT('{status}', seq, RAND())) a, MD5(CONCAT(RAND(), seq)) b,"
            " MD5(RAND() * seq) c"
            f" FROM seq_1_to_{count}) t"
        )

    with engine.begin() as conn:
        conn.execute(sa.text(RESERVATION.format(name="reservation_seed")))
        conn.execute(sa.text(rows_of(rows, "HELD", "UTC_TIMESTAMP() - INTERVAL 10 MINUTE")))
        conn.execute(sa.text(rows_of(CONFIRMED, "CONFIRMED", "UTC_TIMESTAMP() - INTERVAL 20 MINUTE")))


def fresh_table(engine: sa.Engine) -> float:
    """``reservation`` as the template has it; seconds it took."""
    started = time.monotonic()
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS reservation"))
        conn.execute(sa.text(RESERVATION.format(name="reservation")))
        conn.execute(sa.text("INSERT INTO reservation SELECT * FROM reservation_seed"))
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE TABLE reservation"))
    flushed(engine)
    return time.monotonic() - started


def flushed(engine: sa.Engine, timeout_s: float = 120.0) -> float:
    """Wait until InnoDB has written the fresh copy's dirty pages (at most ``timeout_s``): otherwise the
    first method after a copy of millions of rows pays for its flushing, and the methods are not alike."""
    started = time.monotonic()
    with engine.connect() as conn:
        while time.monotonic() - started < timeout_s:
            dirty = conn.execute(sa.text("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")).one()[1]
            if int(dirty) < 1000:
                break
            time.sleep(1)
    return time.monotonic() - started


class LightLoad(threading.Thread):
    """~20 of the service's statements a second: hold a seat, confirm a hold that is not due."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(daemon=True)
        self.engine, self.latencies = engine, []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            key = str(uuid.uuid4())
            started = time.monotonic()
            with self.engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "INSERT INTO reservation (reservationId, userId, seatId, status, heldAt, expiresAt)"
                        " VALUES (:r, :u, :s, 'HELD', UTC_TIMESTAMP(), UTC_TIMESTAMP() + INTERVAL 5 MINUTE)"
                    ),
                    {"r": key, "u": str(uuid.uuid4()), "s": str(uuid.uuid4())},
                )
            with self.engine.begin() as conn:
                conn.execute(
                    sa.text("UPDATE reservation SET status = 'CONFIRMED' WHERE reservationId = :r"),
                    {"r": key},
                )
            self.latencies.append((time.monotonic() - started) / 2)
            self.stop.wait(0.1)

    def p95_ms(self) -> float:
        if len(self.latencies) < 20:
            return max(self.latencies, default=float("nan")) * 1000
        return statistics.quantiles(self.latencies, n=20)[18] * 1000


def with_load(engine: sa.Engine, work: Callable[[], object]) -> tuple[object, float]:
    load = LightLoad(engine)
    load.start()
    time.sleep(0.5)
    try:
        result = work()
    finally:
        load.stop.set()
        load.join()
    return result, load.p95_ms()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5000, help="most holds a batch (the page's)")
    parser.add_argument("--batch-ms", type=int, default=50, help="batch time aimed at; 0: fixed (the page's)")
    args = parser.parse_args()
    url = fresh_database()
    engine = sa.create_engine(url, pool_size=4)
    load_engine = sa.create_engine(url, pool_size=2)
    started = time.monotonic()
    seed_template(engine, args.rows)
    seeded_s = time.monotonic() - started

    fresh_table(engine)
    _, idle_p95 = with_load(load_engine, lambda: time.sleep(5))

    fresh_table(engine)

    def manual() -> float:
        t0 = time.monotonic()
        with engine.begin() as conn:
            conn.execute(sa.text(MANUAL_UPDATE))
        return time.monotonic() - t0

    manual_s, manual_p95 = with_load(load_engine, manual)

    fresh_table(engine)
    step = Step(
        "force-expire",
        "bench",
        "force_expire",
        catalogue.ForceExpireParams(batch=args.batch, batch_ms=args.batch_ms, max_rows=args.rows, sleep=0.0),
    )
    action = ForceExpire(step)
    tool_engine = open_engine(url)
    ctx = Context(
        Profile(name="bench", database_url=url, service_map="step10"),
        tool_engine,
        dry_run=False,
        operator="bench",
        reason="bench",
    )
    ctx.shape = service_map.load("step10")

    def batches() -> object:
        action.prepare(ctx)
        return action.run(ctx)

    outcome, batch_p95 = with_load(load_engine, batches)
    with engine.connect() as conn:
        left = conn.execute(
            sa.text("SELECT COUNT(*) FROM reservation WHERE status = 'HELD' AND expiresAt < UTC_TIMESTAMP()")
        ).scalar()
        expired = conn.execute(sa.text("SELECT COUNT(*) FROM reservation WHERE status = 'EXPIRED'")).scalar()
    result = {
        "rows": args.rows,
        "batch": args.batch,
        "batch_ms": args.batch_ms,
        **batch_stats(action.batches),
        "seed_s": round(seeded_s, 1),
        "manual_single_update_s": round(manual_s, 2),
        "batches_total_s": round(action.elapsed_s, 2),
        "batches_vs_manual": round(action.elapsed_s / manual_s, 2),
        "batches_rows_per_s": round(args.rows / action.elapsed_s),
        "longest_batch_ms": round(action.longest_s * 1000, 1),
        "manual_longest_transaction_ms": round(manual_s * 1000, 1),
        "p95_idle_ms": round(idle_p95, 1),
        "p95_during_manual_ms": round(manual_p95, 1),
        "p95_during_batches_ms": round(batch_p95, 1),
        "left_overdue": left,
        "expired": expired,
        "outcome": getattr(outcome, "detail", ""),
    }
    RESULTS.mkdir(exist_ok=True)
    named = f"force_expire_step10_{args.rows}_b{args.batch}_ms{args.batch_ms}.json"
    (RESULTS / named).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    tool_engine.dispose()
    engine.dispose()
    load_engine.dispose()
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
    conn.close()


if __name__ == "__main__":
    main()
