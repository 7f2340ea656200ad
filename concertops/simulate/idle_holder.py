"""B-3's leak: a client that opens connections as the app's database user and leaves them asleep, as a
pool that never returns its connections would. It runs detached, so the incident outlives the simulate
command, and exits after ``--seconds`` (or once `concertops b3 --apply` has killed every connection).

The database URL comes through the environment, never the command line (``ps`` shows arguments)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

ENV_URL = "CONCERTOPS_IDLE_HOLDER_URL"
READY = "ready"


def spawn(database_url: str, count: int, seconds: int) -> int:
    """Start the holder and return its pid once every connection is open."""
    from concertops.simulate.service import SimulationError

    proc = subprocess.Popen(
        [sys.executable, "-m", __name__, "--count", str(count), "--seconds", str(seconds)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, ENV_URL: database_url},
        start_new_session=True,  # Ctrl-C on simulate must not end the incident it caused
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != READY:
        error = (proc.stderr.read() if proc.stderr else "").strip().splitlines()
        raise SimulationError(f"the idle connections could not be opened: {error[-1] if error else line}")
    proc.stdout.close()
    return proc.pid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seconds", type=int, required=True)
    args = parser.parse_args()
    import sqlalchemy as sa

    url = sa.make_url(os.environ[ENV_URL])
    import pymysql

    conns = [
        pymysql.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 3306,
            user=url.username or "root",
            password=url.password or "",
            database=url.database,
        )
        for _ in range(args.count)
    ]
    for conn in conns:
        conn.cursor().execute("SELECT 1")
    print(READY, flush=True)
    sys.stdout.close()
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        time.sleep(5)
        # No ping (it would wake the connection): a killed one shows as a closed socket.
        if all(conn._sock is None or _closed(conn) for conn in conns):
            break


def _closed(conn: object) -> bool:
    import select

    sock = getattr(conn, "_sock", None)
    if sock is None:
        return True
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, 0x2) == b""  # MSG_PEEK: end of stream = the server closed it
    except OSError:
        return True


if __name__ == "__main__":
    main()
