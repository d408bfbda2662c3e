"""scheduler tables: the newest lease version seen, and pending timers

Revision ID: 0001
Revises:
Create Date: 2026-11-27 10:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per lease ever scheduled: the newest version seen. A LeaseChanged of an
    # older version (re-ordered or re-delivered) loses against it and changes nothing.
    op.create_table(
        "scheduler_lease",
        sa.Column("lease_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("lease_id", name="scheduler_lease_pkey"),
    )
    # A pending timer holds the message it will publish; firing deletes the row.
    op.create_table(
        "scheduler_timer",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("lease_id", sa.BigInteger(), nullable=True),
        sa.Column("lease_version", sa.Integer(), nullable=True),
        sa.Column("fire_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="scheduler_timer_pkey"),
        sa.CheckConstraint("kind IN ('warning', 'expiry', 'sweep')", name="scheduler_timer_kind"),
        sa.CheckConstraint(
            "(kind = 'sweep') = (lease_id IS NULL AND lease_version IS NULL)", name="scheduler_timer_lease"
        ),
    )
    # The firing loop's and GET /timers' order: soonest first.
    op.create_index("ix_scheduler_timer_fire_at", "scheduler_timer", ["fire_at", "id"])
    op.create_index(
        "ix_scheduler_timer_lease_id", "scheduler_timer", ["lease_id"],
        postgresql_where=sa.text("lease_id IS NOT NULL"),
    )
    # At most one pending sweep job, whatever the number of replicas.
    op.create_index(
        "ux_scheduler_timer_sweep", "scheduler_timer", ["kind"], unique=True,
        postgresql_where=sa.text("kind = 'sweep'"),
    )


def downgrade() -> None:
    op.drop_table("scheduler_timer")
    op.drop_table("scheduler_lease")
