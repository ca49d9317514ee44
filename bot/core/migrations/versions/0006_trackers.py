"""action items in the team's tracker: one link per item, with its sync state

Revision ID: 0006_trackers
Revises: 0005_slack_life
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # the package alone does not bind `sqlmodel.sql` for a type checker
from alembic import op

revision = "0006_trackers"
down_revision = "0005_slack_life"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tracker_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action_item_id", sa.Integer(), nullable=False),
        sa.Column("tracker", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("ref", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("issue_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("issue_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("issue_url", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=True),
        sa.Column("remote_done", sa.Boolean(), nullable=False),
        sa.Column("sync", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("synced_version", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("claimed_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("action_item_id"),
        sa.UniqueConstraint("ref"),
        sa.UniqueConstraint("tracker", "issue_id"),
    )
    op.create_index("ix_tracker_links_sync_next", "tracker_links", ["sync", "next_attempt_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tracker_links_sync_next", table_name="tracker_links")
    op.drop_table("tracker_links")
