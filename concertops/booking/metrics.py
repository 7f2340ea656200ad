"""Every metric of one backend instance, in a registry of its own (tests read it without global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from concertops.contract import names

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series only add noise to every query
        r = self.registry = CollectorRegistry()
        self.http_requests = Counter(
            names.HTTP_REQUESTS, "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.http_duration = Histogram(
            names.HTTP_DURATION,
            "HTTP request duration",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.pool_active = Gauge(names.POOL_ACTIVE, "DB connections checked out of the pool", registry=r)
        self.pool_size = Gauge(names.POOL_SIZE, "DB pool size in force", registry=r)
        self.pool_timeouts = Counter(
            names.POOL_TIMEOUTS.removesuffix("_total"),
            "requests that found the DB pool exhausted",
            registry=r,
        )
        self.lock_errors = Counter(
            names.LOCK_ERRORS.removesuffix("_total"), "seat lock not acquired within lock_wait_ms", registry=r
        )
        self.conflicts = Counter(
            names.RESERVATION_CONFLICTS.removesuffix("_total"),
            "reservations refused: seat already taken or sold out",
            ["reason"],
            registry=r,
        )
        self.queue_waiting = Gauge(names.QUEUE_WAITING, "queue tokens WAITING", registry=r)
        self.queue_active = Gauge(names.QUEUE_ACTIVE, "queue tokens ACTIVE", registry=r)
        self.queue_oldest_age = Gauge(
            names.QUEUE_OLDEST_WAITING_AGE, "age of the oldest WAITING token", registry=r
        )
        self.activation_duration = Histogram(
            names.QUEUE_ACTIVATION_DURATION, "queue activation run time", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.producer_errors = Counter(
            names.PRODUCER_ERRORS.removesuffix("_total"),
            "Kafka sends that failed (delivery report or timeout)",
            ["topic"],
            registry=r,
        )
        self.producer_connected = Gauge(
            names.PRODUCER_CONNECTED, "1 when the producer reaches the broker", registry=r
        )
        self.events_skipped = Counter(
            names.EVENTS_SKIPPED.removesuffix("_total"),
            "events dropped because the producer was disconnected",
            ["topic"],
            registry=r,
        )
        self.events_buffered = Gauge(
            names.EVENTS_BUFFERED, "events held in memory while disconnected", registry=r
        )
        self.consumer_lag = Gauge(
            names.CONSUMER_LAG, "messages behind the high watermark", ["group", "topic"], registry=r
        )
        self.consumer_assigned = Gauge(
            names.CONSUMER_ASSIGNED,
            "partitions assigned to this instance's consumer",
            ["group", "topic"],
            registry=r,
        )
        self.outbox_pending = Gauge(names.OUTBOX_PENDING, "outbox events not yet published", registry=r)
        self.overdue_holds = Gauge(names.OVERDUE_HOLDS, "HELD reservations past their expiry", registry=r)
        self.outbox_oldest_age = Gauge(
            names.OUTBOX_OLDEST_AGE, "age of the oldest pending outbox event", registry=r
        )
        self.expiry_dlq = Counter(
            names.EXPIRY_DLQ_EVENTS.removesuffix("_total"), "expiry messages sent to the DLQ", registry=r
        )
        self.expiry_in_flight = Gauge(
            names.EXPIRY_IN_FLIGHT, "expiry messages a blocking handler is sleeping on", registry=r
        )
        self.expired = Counter(
            names.EXPIRED_RESERVATIONS.removesuffix("_total"), "holds expired", ["via"], registry=r
        )
        self.notifications = Counter(names.NOTIFICATIONS.removesuffix("_total"), "users notified", registry=r)
        self.notification_duplicates = Counter(
            names.NOTIFICATION_DUPLICATES.removesuffix("_total"),
            "payment events seen again (deduplicated)",
            registry=r,
        )
        self.cache_hits = Counter(
            names.CACHE_HITS.removesuffix("_total"), "cache hits", ["cache"], registry=r
        )
        self.cache_misses = Counter(
            names.CACHE_MISSES.removesuffix("_total"), "cache misses", ["cache"], registry=r
        )
        self.setting_value = Gauge(names.SETTING_VALUE, "numeric setting in force", ["name"], registry=r)
        self.setting_info = Gauge(names.SETTING_INFO, "text setting in force", ["name", "value"], registry=r)
        self.settings_version = Gauge(names.SETTINGS_VERSION, "settings version applied", registry=r)
        # Every topic's counters exported from the start at 0: a series that first appears at 1 shows no
        # increase to rate(), so the first failures of an outage would go unseen by alerts and runbooks.
        for topic in names.TOPICS:
            self.producer_errors.labels(topic)
            self.events_skipped.labels(topic)
