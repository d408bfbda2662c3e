"""policy bounds: email patterns are addresses or domains (at most 100, matched by set
lookup on a GIN index); at most 10 warnings, 60 s apart

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 07:00:00
"""
from __future__ import annotations

import json
import re

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# The rules as they were when this migration was written (zc_api.leases.policy may move on).
MAX_EMAIL_PATTERNS = 100
MAX_WARNINGS = 10
MIN_WARNING_SPACING_SECONDS = 60
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_LOCAL = re.compile(r"[a-z0-9!#$%&'+/=^_`{|}~.-]{1,64}")


def _domain(value: str) -> bool:
    labels = value.split(".")
    return len(labels) >= 2 and len(value) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def _pattern(value: str) -> str | None:
    pattern = value.strip().lower()
    local, at, domain = pattern.rpartition("@")
    if domain.startswith("*."):
        return pattern if local == "*" and at and _domain(domain[2:]) else None
    return pattern if at and _domain(domain) and (local == "*" or _LOCAL.fullmatch(local)) else None


def _warnings(seconds: list[int]) -> list[int]:
    kept: list[int] = []
    for value in sorted({s for s in seconds if s > 0}, reverse=True):
        if len(kept) < MAX_WARNINGS and (not kept or kept[-1] - value >= MIN_WARNING_SPACING_SECONDS):
            kept.append(value)
    return kept


def upgrade() -> None:
    # A glob could be '*' (everyone who signs in joins that tenant for good) and there could
    # be 50,000 of them, matched one by one on the event loop; and 20,000 warnings made
    # 20,001 timers for one lease. Stored policies are brought within the new bounds; what
    # was dropped is in the account's audit trail, so its admin can see it and re-enter it.
    connection = op.get_bind()
    rows = connection.execute(
        sa.text('SELECT account_id, allowed_email_patterns, warning_seconds FROM account_policy')
    ).all()
    for account_id, patterns, warnings in rows:
        kept = list(dict.fromkeys(p for p in (_pattern(v) for v in patterns) if p))[:MAX_EMAIL_PATTERNS]
        dropped = [v for v in patterns if _pattern(v) not in kept]
        trimmed = _warnings(list(warnings))
        if kept == list(patterns) and trimmed == list(warnings):
            continue
        connection.execute(
            sa.text('UPDATE account_policy SET allowed_email_patterns = :patterns, warning_seconds = :warnings '
                    'WHERE account_id = :account_id'),
            {'patterns': kept, 'warnings': trimmed, 'account_id': account_id},
        )
        connection.execute(
            sa.text("INSERT INTO audit_event (account_id, actor, action, subject_type, subject_id, reason, details) "
                    "VALUES (:account_id, 'system:migration', 'account_policy.updated', 'account_policy', :account_id, :reason, "
                    "CAST(:details AS JSONB))"),
            {
                'account_id': account_id,
                'reason': 'brought within the policy bounds: email patterns are addresses or domains, '
                          f'at most {MAX_EMAIL_PATTERNS}; at most {MAX_WARNINGS} warnings, '
                          f'{MIN_WARNING_SPACING_SECONDS} s apart',
                'details': json.dumps({'changes': {
                    name: {'from': before[:MAX_EMAIL_PATTERNS], 'to': after}
                    for name, before, after in (('allowed_email_patterns', list(patterns), kept),
                                                ('warning_seconds', list(warnings), trimmed))
                    if before != after
                }, 'dropped_email_patterns': len(dropped)}),
            },
        )
    op.create_index(
        'ix_account_policy_email_patterns', 'account_policy', ['allowed_email_patterns'], postgresql_using='gin',
    )


def downgrade() -> None:
    op.drop_index('ix_account_policy_email_patterns', table_name='account_policy')
