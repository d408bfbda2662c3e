"""account.webhook_url: each tenant's own chat webhook for its lease notices

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-02 07:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('account', sa.Column('webhook_url', sa.String(length=2048), nullable=True))


def downgrade() -> None:
    op.drop_column('account', 'webhook_url')
