"""Alembic environment: the connection comes from ``engine.store``, never from a URL in a file."""

from alembic import context

from engine.store import SQLModel

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=SQLModel.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
