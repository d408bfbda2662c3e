"""event_flow: per cloud account and region, when events last arrived through its bound
topic and the last verify probe that did (verify reports whether events flow)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 10:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'event_flow',
        sa.Column('cloud_account_id', sa.Integer(), nullable=False),
        sa.Column('region', sa.String(length=32), nullable=False),
        sa.Column('topic_arn', sa.Text(), nullable=False),
        sa.Column('last_event_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_probe', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['cloud_account_id'], ['cloud_account.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('cloud_account_id', 'region'),
    )


def downgrade() -> None:
    op.drop_table('event_flow')
