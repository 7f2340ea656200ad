"""The manual's four load scenarios at 50 users, on 1 and on 2 backend instances.

Needs the devstack (`concertops devstack up`). For each instance count: a fresh database on the local
MariaDB, migrated and seeded, the `recommended` preset, N instances; then each scenario through the real
`concertops simulate load` command. Prints a Markdown table and writes bench/results/load_scenarios.json.

    .venv/bin/python bench/load_scenarios.py [--duration 20] [--users 50]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pymysql
import redis

from concertops.booking.db import make_engine
from concertops.booking.schema_admin import migrate
from concertops.config import Profile
from concertops.contract import settings_store
from concertops.contract.discovery import state_dir
from concertops.contract.schema import queue_token
from concertops.contract.seeding import seed
from concertops.devstack import launcher

SCENARIOS = ("reservation-stress", "payment-load", "queue-spike", "concert-endurance")
CONCERTOPS = str(Path(sys.executable).with_name("concertops"))
RESULTS = Path(__file__).parent / "results" / "load_scenarios.json"


def fresh_database(name: str) -> str:
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}`")
    conn.close()
    return f"mysql+pymysql://root@127.0.0.1:3306/{name}"


def run_config(instances: int, users: int, duration: float) -> list[dict[str, object]]:
    url = fresh_database(f"concertops_bench_{instances}")
    engine = make_engine(url, pool_size=2)
    migrate(engine)
    with engine.begin() as conn:
        settings_store.apply_preset(conn, "recommended", "bench", "load benchmark")
    redis.Redis.from_url("redis://127.0.0.1:6379/14").flushdb()
    profile = Profile(
        name="bench",
        database_url=url,
        redis_url="redis://127.0.0.1:6379/14",
        kafka_bootstrap_servers="127.0.0.1:19092",
    )
    running = launcher.start(state_dir(), profile, instances, 18181, first_index=301)
    results = []
    try:
        for scenario in SCENARIOS:
            # Each scenario starts with an empty queue: tokens left ACTIVE would keep new users WAITING.
            with engine.begin() as conn:
                conn.execute(queue_token.update().values(status="EXPIRED"))
            schedule = seed(engine, 1, 1, 50).schedule_ids[0]
            cmd = [
                CONCERTOPS,
                "simulate",
                "load",
                scenario,
                "--users",
                str(users),
                "--duration",
                str(duration),
                "--schedule",
                str(schedule),
                "--format",
                "json",
            ]
            cmd += [arg for r in running for arg in ("--url", r.url)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results.append(json.loads(done.stdout))
            print(f"  {scenario} on {instances}: {results[-1]['throughput_rps']} req/s", file=sys.stderr)
    finally:
        launcher.stop(state_dir(), [r.name for r in running])
        engine.dispose()
    return results


def markdown(rows: list[dict[str, object]]) -> str:
    lines = [
        "| scenario | instances | req/s | p50 ms | p95 ms | p99 ms | status mix | business errors "
        "| naive failed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mix = ", ".join(f"{k}: {v}" for k, v in dict(r["statuses"]).items())  # type: ignore[call-overload]
        lines.append(
            f"| {r['scenario']} | {r['instances']} | {r['throughput_rps']} | {r['p50_ms']} | {r['p95_ms']} "
            f"| {r['p99_ms']} | {mix} | {float(r['business_error_rate']):.2%} "  # type: ignore[arg-type]
            f"| {float(r['http_req_failed_rate']):.2%} |"
        )  # type: ignore[arg-type]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    rows = [r for n in (1, 2) for r in run_config(n, args.users, args.duration)]
    rows.sort(key=lambda r: (SCENARIOS.index(str(r["scenario"])), r["instances"]))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2))
    print(markdown(rows))


if __name__ == "__main__":
    main()
