"""The contracts every service shares: topics, the message envelope, commands and events.

Importing this package registers every contract, so :func:`schemas.envelope.decode` knows them.
"""

from schemas import notifications, orders, payments, products, users

__all__ = ["notifications", "orders", "payments", "products", "users"]
