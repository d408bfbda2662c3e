"""list indexes: each list's sort key (with the id that breaks ties) behind its tenant and
filters, so a page, a deep cursor page and a capped count read one index range

Operators with large tables: each index is built CONCURRENTLY (outside a transaction), so
writes go on while it builds; it still reads the whole table once. On a very large table
you may create them beforehand in psql (the statements below, with CONCURRENTLY); an index
of that name already there is left as it is. A build that failed leaves an INVALID index:
drop it and upgrade again. The statements:

    CREATE INDEX CONCURRENTLY ix_lease_account_expires_id ON lease (account_id, expires_at, id);
    CREATE INDEX CONCURRENTLY ix_lease_account_status_expires_id ON lease (account_id, status, expires_at, id);
    CREATE INDEX CONCURRENTLY ix_lease_account_live_expires_id ON lease (account_id, expires_at, id)
        WHERE status IN ('active', 'exempt', 'expired', 'reaping');
    CREATE INDEX CONCURRENTLY ix_resource_account_id_id ON resource (account_id, id);
    CREATE INDEX CONCURRENTLY ix_resource_account_state_id ON resource (account_id, state, id);
    CREATE INDEX CONCURRENTLY ix_audit_account_at_id ON audit_event (account_id, at, id);

The migration then drops the two they make redundant (ix_lease_account_status_expires,
ix_audit_account_at).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 20:00:00
"""
from __future__ import annotations

from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

LIVE = "status IN ('active', 'exempt', 'expired', 'reaping')"

# name, table, columns, partial-index condition
INDEXES = [
    ('ix_lease_account_expires_id', 'lease', ['account_id', 'expires_at', 'id'], None),
    ('ix_lease_account_status_expires_id', 'lease', ['account_id', 'status', 'expires_at', 'id'], None),
    ('ix_lease_account_live_expires_id', 'lease', ['account_id', 'expires_at', 'id'], LIVE),
    ('ix_resource_account_id_id', 'resource', ['account_id', 'id'], None),
    ('ix_resource_account_state_id', 'resource', ['account_id', 'state', 'id'], None),
    ('ix_audit_account_at_id', 'audit_event', ['account_id', 'at', 'id'], None),
]
# Made redundant: the new ones begin with the same columns.
REPLACED = [
    ('ix_lease_account_status_expires', 'lease', ['account_id', 'status', 'expires_at']),
    ('ix_audit_account_at', 'audit_event', ['account_id', 'at']),
]


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, columns, where in INDEXES:
            where_sql = f" WHERE {where}" if where else ""
            op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} ({', '.join(columns)}){where_sql}")
        for name, _, _ in REPLACED:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, columns in REPLACED:
            op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} ({', '.join(columns)})")
        for name, _, _, _ in INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
