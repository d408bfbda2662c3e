"""past_lease_digest: each account's daily list of instances running past their lease,
made once per UTC day whichever api replica gets there first

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 09:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'past_lease_digest',
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('leases', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('account_id', 'day'),
    )


def downgrade() -> None:
    op.drop_table('past_lease_digest')
