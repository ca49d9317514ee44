"""post-mortem revisions remember the form submission that made them (a duplicate delivery saves once);
slack_channels: what the bot knows of the channels it posts to (archived, deleted, removed, private)

Revision ID: 0005_slack_life
Revises: 0004_outbox_priority
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # the package alone does not bind `sqlmodel.sql` for a type checker
from alembic import op

revision = "0005_slack_life"
down_revision = "0004_outbox_priority"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_channels",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("is_private", sa.Boolean(), nullable=False),
        sa.Column("is_archived", sa.Boolean(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("bot_removed", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # batch mode: SQLite cannot add a constraint to an existing table in place; Alembic rebuilds it there.
    with op.batch_alter_table("postmortem_revisions") as table:
        table.add_column(
            sa.Column("submission_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        table.create_unique_constraint(
            "uq_postmortem_revisions_postmortem_id_submission_key", ["postmortem_id", "submission_key"]
        )


def downgrade() -> None:
    op.drop_table("slack_channels")
    with op.batch_alter_table("postmortem_revisions") as table:
        table.drop_constraint("uq_postmortem_revisions_postmortem_id_submission_key", type_="unique")
        table.drop_column("submission_key")
