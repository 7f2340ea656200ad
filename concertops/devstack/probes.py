"""Cheap readiness checks that speak each component's own protocol (an open port is not enough)."""

from __future__ import annotations

import socket
import urllib.request


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def mysql_ready(host: str, port: int, user: str = "root", password: str = "") -> bool:
    import pymysql

    if not tcp_open(host, port):
        return False
    try:
        conn = pymysql.connect(host=host, port=port, user=user, password=password, connect_timeout=2)
    except pymysql.MySQLError:
        return False
    conn.close()
    return True


def redis_ready(host: str, port: int) -> bool:
    import redis

    if not tcp_open(host, port):
        return False
    try:
        return bool(redis.Redis(host=host, port=port, socket_timeout=1, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def kafka_ready(host: str, port: int) -> bool:
    if not tcp_open(host, port):
        return False
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": f"{host}:{port}", "socket.timeout.ms": 2000, "log_level": 0})
    try:
        admin.list_topics(timeout=2)
    except Exception:  # KafkaException and friends: not answering yet
        return False
    return True


def http_ready(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except OSError:
        return False
