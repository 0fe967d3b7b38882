"""Telling a passing failure from a poison message: an infrastructure error (the database or the
broker away or busy) is retried after a growing pause and never dead-lettered, because the same
record will apply once it is back; a poison message goes to the dead-letter topic at once."""

import asyncio

import psycopg
from aiokafka.errors import KafkaError
from sqlalchemy.exc import DBAPIError, OperationalError

INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    OSError,
    KafkaError,
    asyncio.TimeoutError,
)
TRANSIENT_SQLSTATES = ("08", "40", "53", "57", "58", "55006", "55P03")
"""SQLSTATEs (classes, or codes) of the database's passing failures: connection exceptions,
transaction rollbacks (serialization failure, deadlock), insufficient resources, operator
intervention (admin shutdown, crash shutdown, cancel), system errors, and an object or lock in
use. The rest of psycopg's ``OperationalError`` family fails the same way on every try: a
program limit (an index row too large), an error in a routine."""


class PoisonMessageError(ValueError):
    """A record that no retry can fix: it goes to the dead-letter topic with this reason."""


def is_infrastructure_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the database or the broker being away or busy, not from the
    message or the handler: such a batch is delivered again, and never dead-lettered.

    psycopg's own errors (the statements of :mod:`common.statements` run on psycopg itself) and
    SQLAlchemy's wrapping of them are told apart by their SQLSTATE (:data:`TRANSIENT_SQLSTATES`);
    a psycopg error without one was raised by the client: the connection is lost or none came.
    """
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    source = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(source, psycopg.Error):
        if source.sqlstate is None:
            return isinstance(source, psycopg.OperationalError)
        return source.sqlstate.startswith(TRANSIENT_SQLSTATES)
    return isinstance(exc, INFRASTRUCTURE_ERRORS)


class Backoff:
    """A pause that starts at ``first_s``, doubles with each failure in a row up to ``max_s``,
    and starts again from ``first_s`` after a success."""

    def __init__(self, first_s: float, max_s: float) -> None:
        self._first_s = first_s
        self._max_s = max_s
        self.failures = 0
        """Failures in a row."""

    def failed(self) -> float:
        """Count a failure; the pause before the next try."""
        pause: float = min(self._max_s, self._first_s * 2.0 ** min(self.failures, 30))
        self.failures += 1
        return pause

    def succeeded(self) -> None:
        self.failures = 0
