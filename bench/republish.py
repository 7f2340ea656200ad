"""Re-publishing 100,000 outbox events: concertops' publish path against a plain confluent-kafka loop.

In the same run, to a topic of its own on the devstack's broker: a plain producer loop sending the same
100,000 messages (same producer settings, one flush at the end), then concertops' re-publish of the same
events from a fresh outbox table (oldest first, rows locked per batch, each marked PUBLISHED only after its
acknowledgement). Needs the devstack (`concertops devstack up`) and the local MariaDB.

    .venv/bin/python bench/republish.py [--events 100000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path

import pymysql
import sqlalchemy as sa
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from concertops.booking.db import make_engine
from concertops.booking.schema_admin import migrate
from concertops.devstack.components import KAFKA_PORT
from concertops.engine import republish
from concertops.sources import producer as concertops_producer
from concertops.sources.database import open_engine

RESULTS = Path(__file__).parent / "results" / "republish.json"
DATABASE = "concertops_bench_republish"
BOOTSTRAP = f"127.0.0.1:{KAFKA_PORT}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    topic = f"bench.republish.{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)

    payloads = [
        json.dumps({"event_id": str(uuid.uuid4()), "payment_id": i, "amount": 1000})
        for i in range(args.events)
    ]
    # The same settings, with a delivery timeout long enough for 100,000 messages queued at once.
    plain = Producer({**concertops_producer.config(BOOTSTRAP), "message.timeout.ms": 300_000})
    acked = 0

    def count(err: object, _msg: object) -> None:
        nonlocal acked
        acked += err is None

    started = time.monotonic()
    for i, value in enumerate(payloads):
        while True:
            try:
                plain.produce(topic, key=str(i), value=value.encode(), on_delivery=count)
                break
            except BufferError:
                plain.poll(0.1)
        plain.poll(0)
    plain.flush(60)
    plain_s = time.monotonic() - started

    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        cur.execute(f"CREATE DATABASE `{DATABASE}`")
    url = f"mysql+pymysql://root@127.0.0.1:3306/{DATABASE}"
    migrate(make_engine(url, pool_size=1))
    engine = open_engine(url)
    with engine.begin() as db:
        db.execute(
            sa.text(
                "INSERT INTO outbox_event (event_id, topic, aggregate_id, payload, status, attempts,"
                " created_at) VALUES (:e, :t, :a, :p, 'PENDING', 0, NOW())"
            ),
            [
                {"e": json.loads(p)["event_id"], "t": topic, "a": str(i), "p": p}
                for i, p in enumerate(payloads)
            ],
        )
    sender = concertops_producer.Producer(BOOTSTRAP)
    ids = [json.loads(p)["event_id"] for p in payloads]
    sent, started = 0, time.monotonic()
    with engine.connect() as db:
        for start in range(0, len(ids), args.batch):
            done, failed, _last = republish.publish_batch(db, sender, ids[start : start + args.batch])
            sent += len(done)
            if failed or not done:
                break
    ours_s = time.monotonic() - started
    with engine.connect() as db:
        published = db.execute(
            sa.text("SELECT COUNT(*) FROM outbox_event WHERE status = 'PUBLISHED'")
        ).scalar()
    result = {
        "events": args.events,
        "batch": args.batch,
        "plain_producer_s": round(plain_s, 2),
        "plain_events_per_s": round(acked / plain_s),
        "republish_s": round(ours_s, 2),
        "republish_events_per_s": round(sent / ours_s),
        "republish_vs_plain_rate": round((sent / ours_s) / (acked / plain_s), 2),
        "marked_published": published,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")


if __name__ == "__main__":
    main()
