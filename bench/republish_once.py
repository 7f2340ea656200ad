"""Re-publish exactly once: events published, then read back by an independent reader.

On a scratch database with N payments whose ``payment.completed`` events never left (no service running,
so nothing records a notification between runs), on the devstack's broker:

1. ``rerun``: re-publish, then at once again. The rerun must publish 0.
2. ``killed``: another N payments; a re-publish in a child process is SIGKILLed once some batches are
   acknowledged, then a rerun in this process finishes.

After each, a plain confluent-kafka consumer (not concertops's reader) reads ``payment.completed`` from the
beginning of every partition and counts each expected event id: duplicates and missing must both be 0.
Payment ids start far above any test's, since event ids are deterministic per payment id.

    .venv/bin/python bench/republish_once.py [--events 20000] [--batch 200]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pymysql
import sqlalchemy as sa
from confluent_kafka import Consumer, KafkaError, TopicPartition

from concertops.booking.db import make_engine
from concertops.booking.schema_admin import migrate
from concertops.config import Profile
from concertops.contract import events
from concertops.contract.names import TOPIC_PAYMENT_COMPLETED
from concertops.devstack.components import KAFKA_PORT
from concertops.engine.action_api import Context, Outcome
from concertops.model.findings import Step
from concertops.runbooks import catalogue
from concertops.sources.database import open_engine

RESULTS = Path(__file__).parent / "results" / "republish_once.json"
DATABASE = "concertops_bench_republish_once"
URL = f"mysql+pymysql://root@127.0.0.1:3306/{DATABASE}"
BOOTSTRAP = f"127.0.0.1:{KAFKA_PORT}"


def republish(batch: int, rate: int) -> Outcome:
    from concertops.engine.republish import RepublishPayments

    engine = open_engine(URL)
    try:
        config = catalogue.RepublishPaymentsParams(
            window="last_hour", max_events=10**6, batch=batch, max_rate=rate
        )
        action = RepublishPayments(Step("republish-window", "bench", "republish_payments", config))
        profile = Profile(name="bench", database_url=URL, kafka_bootstrap_servers=BOOTSTRAP)
        ctx = Context(profile, engine, dry_run=False, operator="bench", reason="bench")
        action.prepare(ctx)
        return action.run(ctx)
    finally:
        engine.dispose()


def seed(count: int, first_id: int) -> list[str]:
    """``count`` payments of two minutes ago, ids from ``first_id``; their event ids."""
    engine = make_engine(URL, pool_size=1)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO payment (payment_id, reservation_id, user_id, amount, created_at)"
                " VALUES (:p, :p, :p, 1000, UTC_TIMESTAMP() - INTERVAL 2 MINUTE)"
            ),
            [{"p": first_id + i} for i in range(count)],
        )
    engine.dispose()
    return [events.event_id(TOPIC_PAYMENT_COMPLETED, first_id + i) for i in range(count)]


def copies(ids: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(ids, 0)
    reader = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"bench-reader-{time.time_ns()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    partitions = (
        reader.list_topics(TOPIC_PAYMENT_COMPLETED, timeout=10).topics[TOPIC_PAYMENT_COMPLETED].partitions
    )
    reader.assign([TopicPartition(TOPIC_PAYMENT_COMPLETED, p, 0) for p in partitions])
    left = set(partitions)
    while left:
        message = reader.poll(1.0)
        if message is None:
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                left.discard(message.partition())
            continue
        event = dict(message.headers() or []).get("event_id", b"").decode()
        if event in counts:
            counts[event] += 1
    reader.close()
    return counts


def tally(counts: dict[str, int]) -> dict[str, int]:
    return {
        "expected": len(counts),
        "on_topic_once": sum(1 for c in counts.values() if c == 1),
        "duplicates": sum(c - 1 for c in counts.values() if c > 1),
        "missing": sum(1 for c in counts.values() if c == 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # the run that is killed
        republish(args.batch, 2000)
        return
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        cur.execute(f"CREATE DATABASE `{DATABASE}`")
    migrate(make_engine(URL, pool_size=1))
    base = 7_000_000_000 + (time.time_ns() // 1000) % 1_000_000_000

    ids = seed(args.events, base)
    started = time.monotonic()
    first = republish(args.batch, 100_000)
    first_s = time.monotonic() - started
    second = republish(args.batch, 100_000)
    rerun = {
        "events": args.events,
        "first_run_published": first.affected,
        "first_run_s": round(first_s, 2),
        "first_run_detail": first.detail,
        "rerun_published": second.affected,
        **tally(copies(ids)),
    }

    ids = seed(args.events, base + args.events)
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", "--batch", str(args.batch)], env={**os.environ}
    )
    engine = make_engine(URL, pool_size=1)
    acked = "SELECT COUNT(*) FROM outbox_event WHERE status = 'PUBLISHED'"
    while True:
        with engine.connect() as conn:
            published = int(conn.execute(sa.text(acked)).scalar_one())
        if published >= args.events + args.events // 4:
            break
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    with engine.connect() as conn:
        claimed = int(
            conn.execute(sa.text("SELECT COUNT(*) FROM outbox_event WHERE status = 'SENDING'")).scalar_one()
        )
        published_at_kill = int(conn.execute(sa.text(acked)).scalar_one()) - args.events
    engine.dispose()
    finish = republish(args.batch, 100_000)
    killed = {
        "events": args.events,
        "published_before_kill": published_at_kill,
        "claimed_unrecorded_at_kill": claimed,
        "rerun_published": finish.affected,
        "rerun_detail": finish.detail,
        **tally(copies(ids)),
    }
    result = {"rerun": rerun, "killed": killed}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")


if __name__ == "__main__":
    main()
