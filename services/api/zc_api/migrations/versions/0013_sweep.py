"""sweep: inventory sweeps an admin asked for, at most one in progress per cloud account
and region, with the state and counts the ingestor reports

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 19:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sweep',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('cloud_account_id', sa.Integer(), nullable=False),
        sa.Column('region', sa.String(length=32), nullable=False),
        sa.Column('requested_by', sa.String(length=200), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('instances_seen', sa.Integer(), nullable=True),
        sa.Column('instances_gone', sa.Integer(), nullable=True),
        sa.Column('error', sa.String(length=1000), nullable=True),
        sa.Column('requested_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('requested', 'running', 'done', 'failed')", name='state'),
        sa.ForeignKeyConstraint(['account_id'], ['account.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['cloud_account_id'], ['cloud_account.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_sweep_account_id', 'sweep', ['account_id'])
    op.create_index(
        'uq_sweep_in_progress', 'sweep', ['cloud_account_id', 'region'], unique=True,
        postgresql_where=sa.text("state IN ('requested', 'running')"),
    )


def downgrade() -> None:
    op.drop_table('sweep')
