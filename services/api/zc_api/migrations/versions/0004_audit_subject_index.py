"""audit_event by subject: a lease's trail and when each resource last changed state

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 10:00:00
"""
from __future__ import annotations

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Without it, the leases page (when each stopped instance stopped) and a lease's page
    # (its trail) read the whole audit log on every request: it grows with every change.
    op.create_index('ix_audit_subject', 'audit_event', ['subject_type', 'subject_id', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_audit_subject', table_name='audit_event')
