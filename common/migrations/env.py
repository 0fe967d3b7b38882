"""The one Alembic environment of every service; each service keeps only its versions folder.

Run from :func:`common.db.migrate`, which passes an open connection and the service's metadata.
"""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=context.config.attributes["target_metadata"],
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
