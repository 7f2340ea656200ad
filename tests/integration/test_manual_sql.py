"""Every SQL statement of the incident manual runs verbatim on the migrated schema (MariaDB)."""

from __future__ import annotations

import pymysql
import pytest
import sqlalchemy as sa
from harness import Backend

from concertops.contract import manual_sql


def _driver_connection(booking: Backend) -> pymysql.connections.Connection:
    url = sa.make_url(booking.profile.database_url or "")
    return pymysql.connect(
        host=url.host,
        port=url.port or 3306,
        user=url.username,
        password=url.password or "",
        database=url.database,
        init_command="SET time_zone = '+00:00'",
    )


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("SEAT_STATUS", (1,)),
        ("QUEUE_STATUS", None),
        ("RECENT_CONFIRMED_PAYMENTS", None),
        ("DOUBLE_PAYMENTS", None),
        ("OVERDUE_HOLDS", None),
        ("FORCE_EXPIRE_ALL", None),
        ("PROCESSLIST", None),
        ("THREADS_CONNECTED", None),
        ("MAX_CONNECTIONS", None),
        ("CONNECTION_ERRORS_MAX", None),
        ("IDLE_KILL_LIST", None),
        ("PAYMENTS_IN_WINDOW", {"outage_start": "2026-01-01 00:00:00", "outage_end": "2027-01-01 00:00:00"}),
    ],
)
def test_the_manual_statement_runs_as_written(booking: Backend, name: str, params: object) -> None:
    statement = getattr(manual_sql, name)
    conn = _driver_connection(booking)
    try:
        with conn.cursor() as cur:
            if isinstance(params, dict):
                # The manual's :name placeholders, bound by the driver.
                sql = statement
                for key in params:
                    sql = sql.replace(f":{key}", f"%({key})s")
                cur.execute(sql, params)
            elif params:
                cur.execute(statement.replace("?", "%s"), params)
            else:
                cur.execute(statement)
            cur.fetchall()
        conn.rollback()  # the manual's UPDATE changes nothing here
    finally:
        conn.close()
