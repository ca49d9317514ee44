"""post-mortem revisions remember the form submission that made them (a duplicate delivery saves once)

Revision ID: 0005_slack_life
Revises: 0003_inbound_processing
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005_slack_life"
down_revision = "0003_inbound_processing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot add a constraint to an existing table in place; Alembic rebuilds it there.
    with op.batch_alter_table("postmortem_revisions") as table:
        table.add_column(
            sa.Column("submission_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        table.create_unique_constraint(
            "uq_postmortem_revisions_postmortem_id_submission_key", ["postmortem_id", "submission_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("postmortem_revisions") as table:
        table.drop_constraint("uq_postmortem_revisions_postmortem_id_submission_key", type_="unique")
        table.drop_column("submission_key")
