"""The local real stack: MariaDB, Redis, the Tansu broker, Prometheus and the exporters on 127.0.0.1."""
