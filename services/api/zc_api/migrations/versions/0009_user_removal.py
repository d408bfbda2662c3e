"""users can be removed, and a person who joined by pattern can be moved by an invitation:
app_user.joined_how, and removed_user (a removed address does not rejoin by pattern)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 08:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('app_user', sa.Column('joined_how', sa.String(length=16), nullable=True))
    # How each person joined was only in the audit trail until now.
    op.execute(
        "UPDATE app_user u SET joined_how = j.how FROM ("
        "  SELECT DISTINCT ON (subject_id) subject_id, left(details->>'how', 16) AS how FROM audit_event"
        "  WHERE action = 'user.joined' AND subject_type = 'user' ORDER BY subject_id, id DESC"
        ") j WHERE j.subject_id = u.id"
    )
    op.execute("UPDATE app_user u SET joined_how = 'added' WHERE joined_how IS NULL AND EXISTS ("
               "SELECT 1 FROM audit_event a WHERE a.action = 'user.created' AND a.subject_type = 'user' "
               "AND a.subject_id = u.id)")
    op.create_table(
        'removed_user',
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=False),
        sa.Column('removed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('removed_by', sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('account_id', 'email'),
    )


def downgrade() -> None:
    op.drop_table('removed_user')
    op.drop_column('app_user', 'joined_how')
