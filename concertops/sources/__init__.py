"""Adapters to the sources a runbook reads: SQL, Redis, Kafka, Prometheus and direct /metrics scrapes."""
