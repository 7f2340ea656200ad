"""``python -m concertops.booking --name N --port P``: one backend instance (the launcher runs several)."""

from __future__ import annotations

import argparse
import faulthandler
import logging

from concertops.booking.instance import InstanceConfig, serve
from concertops.config import load_profile


def main() -> None:
    # A crash in a native client library (librdkafka, the DB driver) leaves the Python stacks in the log.
    faulthandler.enable()
    parser = argparse.ArgumentParser(prog="python -m concertops.booking")
    parser.add_argument("--name", default="booking-1")
    parser.add_argument("--port", type=int, default=18081)
    args = parser.parse_args()
    profile = load_profile()  # CONCERTOPS_* from the launcher
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {args.name} %(levelname)s %(name)s: %(message)s"
    )
    serve(
        InstanceConfig(
            name=args.name,
            port=args.port,
            database_url=profile.database_url or "",
            redis_url=profile.redis_url or "",
            kafka_bootstrap_servers=profile.kafka_bootstrap_servers or "",
        )
    )


if __name__ == "__main__":
    main()
