"""Topic, consumer-group and metric names (from the incident manual where it names them)."""

from __future__ import annotations

TOPIC_PAYMENT_COMPLETED = "payment.completed"
TOPIC_EXPIRATION = "reservation.expiration"
TOPIC_EXPIRATION_DLQ = "reservation.expiration.dlq"
TOPICS = (TOPIC_PAYMENT_COMPLETED, TOPIC_EXPIRATION, TOPIC_EXPIRATION_DLQ)

GROUP_EXPIRY = "booking-expiry"
GROUP_NOTIFICATION = "booking-notification"

# HTTP
HTTP_REQUESTS = "http_requests_total"
HTTP_DURATION = "http_request_duration_seconds"
# Database pool
POOL_ACTIVE = "mysql_connection_pool_active"
POOL_SIZE = "mysql_connection_pool_size"
POOL_TIMEOUTS = "mysql_connection_pool_timeouts_total"
# Locks and conflicts
LOCK_ERRORS = "distributed_lock_acquisition_errors_total"
RESERVATION_CONFLICTS = "reservation_conflict_total"
# Queue
QUEUE_WAITING = "queue_waiting_tokens"
QUEUE_ACTIVE = "queue_active_tokens"
QUEUE_OLDEST_WAITING_AGE = "queue_oldest_waiting_age_seconds"
QUEUE_ACTIVATION_DURATION = "queue_activation_duration_seconds"
# Kafka
PRODUCER_ERRORS = "kafka_producer_error_total"
PRODUCER_CONNECTED = "kafka_producer_connected"
EVENTS_SKIPPED = "kafka_events_skipped_total"
EVENTS_BUFFERED = "kafka_events_buffered"
CONSUMER_LAG = "kafka_consumer_lag"
CONSUMER_ASSIGNED = "kafka_consumer_assigned_partitions"
OUTBOX_PENDING = "outbox_pending_events"
OUTBOX_OLDEST_AGE = "outbox_oldest_pending_age_seconds"
# HELD reservations past their expiry (what B-2 force-expires), counted by every instance
OVERDUE_HOLDS = "reservation_overdue_holds"
EXPIRY_DLQ_EVENTS = "reservation_expiry_dlq_total"
EXPIRY_IN_FLIGHT = "expiry_consumer_in_flight"
EXPIRED_RESERVATIONS = "reservation_expired_total"
NOTIFICATIONS = "notifications_sent_total"
NOTIFICATION_DUPLICATES = "notification_duplicates_total"
# Cache
CACHE_HITS = "cache_hits_total"
CACHE_MISSES = "cache_misses_total"
# Applied settings, per instance
SETTING_VALUE = "booking_setting_value"
SETTING_INFO = "booking_setting_info"
SETTINGS_VERSION = "booking_settings_version"

# Redis lock held by whoever activates queue tokens (one activator at a time; concertops takes it too).
ACTIVATOR_LOCK = "queue:activator"
