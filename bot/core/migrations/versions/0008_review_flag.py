"""A published post-mortem flagged for review when its incident reopens; an incident's current assignees

Revision ID: 0008_review_flag
Revises: 0007_pagerduty_identity
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # the package alone does not bind `sqlmodel.sql` for a type checker
from alembic import op

revision = "0008_review_flag"
down_revision = "0007_pagerduty_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("postmortems") as table:
        table.add_column(sa.Column("needs_review_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    with op.batch_alter_table("incidents") as table:
        table.add_column(sa.Column("pagerduty_assignees", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as table:
        table.drop_column("pagerduty_assignees")
    with op.batch_alter_table("postmortems") as table:
        table.drop_column("needs_review_since")
