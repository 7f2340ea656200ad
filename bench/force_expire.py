"""Force-expiring 200,000 overdue holds on MariaDB: concertops' batches against the manual's single UPDATE.

For each method, in the same run: a fresh table of N overdue HELD holds (one per seat, seats HELD), the
method, and a light concurrent load of reservation transactions (the service's statements: the seat row
locked, a reservation inserted, the seat taken) at about 20 per second on another schedule, whose p95 is
compared with the same load on an idle database. Needs only the local MariaDB.

    .venv/bin/python bench/force_expire.py [--rows 200000] [--batch 5000] [--batch-ms 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pymysql
import sqlalchemy as sa
from batch_stats import batch_stats

from concertops.booking.db import make_engine
from concertops.booking.schema_admin import migrate
from concertops.config import Profile
from concertops.engine.action_api import Context
from concertops.engine.force_expire import ForceExpire
from concertops.model.findings import Step
from concertops.runbooks import catalogue
from concertops.sources.database import open_engine

RESULTS = Path(__file__).parent / "results" / "force_expire.json"
DATABASE = "concertops_bench_expire"
MANUAL_UPDATE = "UPDATE reservation SET status = 'EXPIRED' WHERE status = 'HELD' AND held_expires_at < NOW()"
# The manual's UPDATE leaves the seats HELD (unsellable). The whole fix, still in one statement:
COMPLETE_UPDATE = (
    "UPDATE reservation r JOIN seat s ON s.seat_id = r.seat_id SET r.status = 'EXPIRED',"
    " r.updated_at = NOW(), s.status = 'AVAILABLE', s.reservation_id = NULL"
    " WHERE r.status = 'HELD' AND r.held_expires_at < NOW()"
)


def fresh_database() -> str:
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        cur.execute(f"CREATE DATABASE `{DATABASE}`")
    conn.close()
    return f"mysql+pymysql://root@127.0.0.1:3306/{DATABASE}"


def seed(engine: sa.Engine, rows: int) -> None:
    """Schedule 1: ``rows`` seats, each HELD by an overdue hold. Schedule 2: free seats for the light load."""
    with engine.begin() as conn:
        for statement in (
            "DELETE FROM reservation",
            "DELETE FROM seat",
            "DELETE FROM concert_schedule",
            "DELETE FROM concert",
            "INSERT INTO concert (concert_id, title, created_at) VALUES (1, 'bench', NOW())",
            "INSERT INTO concert_schedule (schedule_id, concert_id, starts_at, sold_out) VALUES"
            " (1, 1, NOW() + INTERVAL 30 DAY, 0), (2, 1, NOW() + INTERVAL 31 DAY, 0)",
            f"INSERT INTO seat (schedule_id, seat_no, price, status) SELECT 1, seq, 1000, 'AVAILABLE'"
            f" FROM seq_1_to_{rows}",
            "INSERT INTO seat (schedule_id, seat_no, price, status) SELECT 2, seq, 1000, 'AVAILABLE'"
            " FROM seq_1_to_100000",
            "INSERT INTO reservation (user_id, schedule_id, seat_no, seat_id, status, held_expires_at,"
            " created_at, updated_at) SELECT seat_no, 1, seat_no, seat_id, 'HELD',"
            " NOW() - INTERVAL 10 MINUTE, NOW() - INTERVAL 15 MINUTE, NOW() FROM seat WHERE schedule_id = 1",
            "UPDATE seat JOIN reservation r ON r.seat_id = seat.seat_id SET seat.status = 'HELD',"
            " seat.reservation_id = r.reservation_id WHERE seat.schedule_id = 1",
        ):
            conn.execute(sa.text(statement))
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE TABLE reservation, seat"))


class LightLoad(threading.Thread):
    """~20 reservation transactions a second on schedule 2; latency of each, in seconds."""

    def __init__(self, engine: sa.Engine, first_seat: int) -> None:
        super().__init__(daemon=True)
        self.engine, self.seat_no, self.latencies = engine, first_seat, []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            with self.engine.begin() as conn:
                row = conn.execute(
                    sa.text("SELECT seat_id FROM seat WHERE schedule_id = 2 AND seat_no = :n FOR UPDATE"),
                    {"n": self.seat_no},
                ).one()
                rid = conn.execute(
                    sa.text(
                        "INSERT INTO reservation (user_id, schedule_id, seat_no, seat_id, status,"
                        " held_expires_at, created_at, updated_at)"
                        " VALUES (:n, 2, :n, :s, 'HELD', NOW() + INTERVAL 5 MINUTE, NOW(), NOW())"
                    ),
                    {"n": self.seat_no, "s": row.seat_id},
                ).lastrowid
                conn.execute(
                    sa.text("UPDATE seat SET status = 'HELD', reservation_id = :r WHERE seat_id = :s"),
                    {"r": rid, "s": row.seat_id},
                )
            self.latencies.append(time.monotonic() - started)
            self.seat_no += 1
            self.stop.wait(0.05)

    def p95_ms(self) -> float:
        return (
            statistics.quantiles(self.latencies, n=20)[18] * 1000
            if len(self.latencies) >= 20
            else float("nan")
        )


def with_load(engine: sa.Engine, first_seat: int, work: Callable[[], object]) -> tuple[object, float]:
    load = LightLoad(engine, first_seat)
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
    engine = make_engine(url, pool_size=4)
    migrate(engine)
    load_engine = make_engine(url, pool_size=2)

    seed(engine, args.rows)
    _, idle_p95 = with_load(load_engine, 1, lambda: time.sleep(5))

    seed(engine, args.rows)

    def one_statement(sql: str) -> Callable[[], float]:
        def run() -> float:
            started = time.monotonic()
            with engine.begin() as conn:
                conn.execute(sa.text(sql))
            return time.monotonic() - started

        return run

    manual_s, manual_p95 = with_load(load_engine, 1, one_statement(MANUAL_UPDATE))

    seed(engine, args.rows)

    complete_s, complete_p95 = with_load(load_engine, 1, one_statement(COMPLETE_UPDATE))

    seed(engine, args.rows)
    step = Step(
        "force-expire",
        "bench",
        "force_expire",
        catalogue.ForceExpireParams(batch=args.batch, batch_ms=args.batch_ms, max_rows=args.rows, sleep=0.0),
    )
    action = ForceExpire(step)
    tool_engine = open_engine(url)
    ctx = Context(
        Profile(name="bench", database_url=url), tool_engine, dry_run=False, operator="bench", reason="bench"
    )

    def batches() -> object:
        action.prepare(ctx)
        return action.run(ctx)

    outcome, batch_p95 = with_load(load_engine, 1, batches)
    with engine.connect() as conn:
        left = conn.execute(
            sa.text("SELECT COUNT(*) FROM reservation WHERE schedule_id = 1 AND status = 'HELD'")
        ).scalar()
        freed = conn.execute(
            sa.text("SELECT COUNT(*) FROM seat WHERE schedule_id = 1 AND status = 'AVAILABLE'")
        ).scalar()
    result = {
        "rows": args.rows,
        "batch": args.batch,
        "batch_ms": args.batch_ms,
        **batch_stats(action.batches),
        "manual_single_update_s": round(manual_s, 2),
        "complete_single_update_s": round(complete_s, 2),
        "p95_during_complete_ms": round(complete_p95, 1),
        "batches_total_s": round(action.elapsed_s, 2),
        "batches_vs_complete": round(action.elapsed_s / complete_s, 2),
        "batches_vs_manual": round(action.elapsed_s / manual_s, 2),
        "batches_rows_per_s": round(args.rows / action.elapsed_s),
        "longest_batch_ms": round(action.longest_s * 1000, 1),
        "manual_longest_transaction_ms": round(manual_s * 1000, 1),
        "p95_idle_ms": round(idle_p95, 1),
        "p95_during_manual_ms": round(manual_p95, 1),
        "p95_during_batches_ms": round(batch_p95, 1),
        "left_held": left,
        "seats_freed": freed,
        "outcome": getattr(outcome, "detail", ""),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    tool_engine.dispose()
    engine.dispose()
    load_engine.dispose()


if __name__ == "__main__":
    main()
