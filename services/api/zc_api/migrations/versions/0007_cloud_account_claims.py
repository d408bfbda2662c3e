"""cloud account claims: exclusive only once verified; removable; SNS topics bound per region

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 07:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

LIVE_VERIFIED = sa.text('verified_at IS NOT NULL AND removed_at IS NULL')


def upgrade() -> None:
    # Any tenant could claim any AWS account id and keep its real owner out for good: the
    # claim is now exclusive only once verified (one live verified claim per AWS account
    # and per role), and a removed claim is kept (its leases and audit) but frees the id.
    op.add_column('cloud_account', sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('cloud_account', sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('cloud_account', sa.Column(
        'topic_arns', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False,
    ))
    op.drop_constraint('cloud_account_upstream_account_id_key', 'cloud_account', type_='unique')
    op.drop_constraint('cloud_account_role_arn_key', 'cloud_account', type_='unique')
    op.create_index('ix_cloud_account_upstream_account_id', 'cloud_account', ['upstream_account_id'], unique=False)
    op.create_index(
        'uq_cloud_account_verified_upstream', 'cloud_account', ['upstream_account_id'], unique=True,
        postgresql_where=LIVE_VERIFIED,
    )
    op.create_index(
        'uq_cloud_account_verified_role', 'cloud_account', ['role_arn'], unique=True, postgresql_where=LIVE_VERIFIED,
    )
    # Cloud accounts onboarded before: each AWS account was held by one tenant only, and
    # its events went to it; keep them flowing as if verified when they were created.
    op.execute('UPDATE cloud_account SET verified_at = created_at')


def downgrade() -> None:
    op.execute('DELETE FROM cloud_account WHERE removed_at IS NOT NULL OR verified_at IS NULL')
    op.drop_index('uq_cloud_account_verified_role', table_name='cloud_account')
    op.drop_index('uq_cloud_account_verified_upstream', table_name='cloud_account')
    op.drop_index('ix_cloud_account_upstream_account_id', table_name='cloud_account')
    op.create_unique_constraint('cloud_account_role_arn_key', 'cloud_account', ['role_arn'])
    op.create_unique_constraint('cloud_account_upstream_account_id_key', 'cloud_account', ['upstream_account_id'])
    op.drop_column('cloud_account', 'topic_arns')
    op.drop_column('cloud_account', 'removed_at')
    op.drop_column('cloud_account', 'verified_at')
