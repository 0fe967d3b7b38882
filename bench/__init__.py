"""``make bench``: how many orders per second the shop completes, how long one takes, and how
far that is from what PostgreSQL, Kafka and a bare FastAPI endpoint do alone on the same machine.

Run with ``python -m bench`` (``--quick`` for a smoke run); progress goes to stderr, the table to
stdout, and the same figures as JSON to ``<state dir>/bench/``.
"""
