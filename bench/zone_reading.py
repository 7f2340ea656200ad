"""The cost of holding a map's zone against the data (``concertops.sources.clock``) on production's
reservation table, against the B-2 signal it guards, side by side in one run.

A table of N reservations written over the last 30 days by a service at +09:00 (``heldAt``) with the
database's own ``createdAt`` (no index on it, as production's DDL has none), 1 % of them HELD. Each round
times, alternating: the zone reading (the newest rows of the last day, both clocks), and B-2's overdue count
(``status = 'HELD' AND expiresAt < now``, on the status index). Needs only the local MariaDB.

    .venv/bin/python bench/zone_reading.py [--rows 2000000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import pymysql
import sqlalchemy as sa

from concertops.contract import service_map
from concertops.sources.clock import read_zone
from concertops.sources.database import open_engine

DATABASE = "concertops_bench_zone"
RESERVATION = (
    "CREATE TABLE reservation (reservationId varchar(36) PRIMARY KEY, userId varchar(36) NOT NULL,"
    " seatId varchar(36) NOT NULL, status enum('HELD','CONFIRMED','CANCELLED','EXPIRED') NOT NULL,"
    " heldAt datetime NOT NULL, expiresAt datetime NOT NULL,"
    " createdAt datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), KEY (userId), KEY (seatId), KEY (status))"
)
OVERDUE = (
    "SELECT COUNT(*) FROM reservation WHERE status = 'HELD'"
    " AND expiresAt < (UTC_TIMESTAMP() + INTERVAL 32400 SECOND) - INTERVAL 30 SECOND"
)


def seed(rows: int) -> None:
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        cur.execute(f"CREATE DATABASE `{DATABASE}`")
        cur.execute(f"USE `{DATABASE}`")
        cur.execute(RESERVATION)
        cur.execute(
            "INSERT INTO reservation (reservationId, userId, seatId, status, heldAt, expiresAt, createdAt)"
            " SELECT MD5(seq), MD5(seq + 1), MD5(seq + 2), IF(seq % 100 = 0, 'HELD', 'CONFIRMED'),"
            " t + INTERVAL 9 HOUR, t + INTERVAL 9 HOUR + INTERVAL 5 MINUTE, t"
            f" FROM (SELECT seq, UTC_TIMESTAMP(6) - INTERVAL ({rows} - seq) * 2592 / {rows} * 1000 SECOND"
            f" AS t FROM seq_1_to_{rows}) s"
        )
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="reuse the table a previous run seeded")
    args = parser.parse_args()
    started = time.monotonic()
    if not args.keep:
        seed(args.rows)
        print(f"seeded {args.rows:,} reservations in {time.monotonic() - started:.1f} s")
    engine = open_engine(f"mysql+pymysql://root@127.0.0.1:3306/{DATABASE}", 30, connections=1)
    shape = service_map.load("step10")
    reading_s: list[float] = []
    overdue_s: list[float] = []
    with engine.connect() as conn:
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            reading = read_zone(conn, shape, "reservation")
            reading_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            overdue = conn.execute(sa.text(OVERDUE)).scalar_one()
            overdue_s.append(time.perf_counter() - t0)
    engine.dispose()
    zone, count = statistics.median(reading_s), statistics.median(overdue_s)
    print(f"zone reading: {reading.implied or reading.declared} from {reading.rows} rows")
    print(
        f"rows {args.rows:,}: zone reading median {zone * 1000:.1f} ms, B-2 overdue count median "
        f"{count * 1000:.1f} ms ({overdue} overdue); reading / count = {zone / count:.2f}x"
    )


if __name__ == "__main__":
    main()
