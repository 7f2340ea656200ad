"""The incident manual's SQL, verbatim: the schema is held to running every statement as written.

Placeholders are the manual's own (``?`` and ``:name``); on MySQL/MariaDB they run as is once bound.
"""

from __future__ import annotations

# seat status of one schedule.
SEAT_STATUS = "SELECT status, COUNT(*) FROM reservation WHERE schedule_id = ? GROUP BY status;"

# the queue over the last ten minutes.
QUEUE_STATUS = (
    "SELECT status, COUNT(*) FROM queue_token WHERE created_at > NOW() - INTERVAL 10 MINUTE GROUP BY status;"
)

# B-1: confirmed reservations paid in the last hour (whose notification may not have been sent).
RECENT_CONFIRMED_PAYMENTS = (
    "SELECT r.reservation_id, p.payment_id, p.created_at FROM reservation r JOIN payment p "
    "ON r.reservation_id = p.reservation_id WHERE r.status = 'CONFIRMED' "
    "AND p.created_at > NOW() - INTERVAL 1 HOUR ORDER BY p.created_at DESC;"
)

# B-1: double payments.
DOUBLE_PAYMENTS = "SELECT reservation_id, COUNT(*) AS attempt_count FROM payment GROUP BY reservation_id HAVING COUNT(*) > 1;"

# B-2: HELD reservations past their expiry.
OVERDUE_HOLDS = (
    "SELECT reservation_id, user_id, schedule_id, seat_no, status, held_expires_at FROM reservation "
    "WHERE status = 'HELD' AND held_expires_at < NOW() ORDER BY held_expires_at;"
)

# B-2: the manual's one-shot force-expire (concertops runs it in batches instead).
FORCE_EXPIRE_ALL = (
    "UPDATE reservation SET status = 'EXPIRED' WHERE status = 'HELD' AND held_expires_at < NOW();"
)

# B-3: connections.
PROCESSLIST = "SHOW PROCESSLIST;"
THREADS_CONNECTED = "SHOW STATUS LIKE 'Threads_connected'"
MAX_CONNECTIONS = "SHOW VARIABLES LIKE 'max_connections';"
CONNECTION_ERRORS_MAX = "SHOW STATUS LIKE 'Connection_errors_max_connections'"
IDLE_KILL_LIST = "SELECT CONCAT('KILL ', id, ';') FROM information_schema.PROCESSLIST WHERE command = 'Sleep' AND time > 10;"

# B-4: payments in an outage window.
PAYMENTS_IN_WINDOW = (
    "SELECT payment_id, user_id, created_at FROM payment WHERE created_at BETWEEN :outage_start AND :outage_end "
    "ORDER BY created_at;"
)
