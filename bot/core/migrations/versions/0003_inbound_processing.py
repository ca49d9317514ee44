"""inbound deliveries are processed after they are stored: attempts, next attempt, the processor's index

Revision ID: 0003_inbound_processing
Revises: 0002_perf
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # the package alone does not bind `sqlmodel.sql` for a type checker
from alembic import op

revision = "0003_inbound_processing"
down_revision = "0002_perf"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot drop a column in place (downgrade), Alembic rebuilds the table there.
    with op.batch_alter_table("inbound_deliveries") as table:
        table.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("next_attempt_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.create_index(
        "ix_inbound_deliveries_unprocessed",
        "inbound_deliveries",
        ["source", "processed_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_deliveries_unprocessed", table_name="inbound_deliveries")
    with op.batch_alter_table("inbound_deliveries") as table:
        table.drop_column("next_attempt_at")
        table.drop_column("attempts")
