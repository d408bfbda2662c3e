"""lease_warned: the last warning planned for a lease version (warn_by) and when it was
delivered (warned_at); the reaper's claim waits for it, so nobody is reaped unwarned

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 19:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Leases already stored keep NULL (no warning planned): they are claimed as before,
    # and their next version plans its warnings.
    op.add_column('lease', sa.Column('warn_by', sa.DateTime(timezone=True), nullable=True))
    op.add_column('lease', sa.Column('warned_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('lease', 'warned_at')
    op.drop_column('lease', 'warn_by')
