"""outbox rows have a priority (a new incident's channel and card before a digest or a nudge), and the
claim keeps each channel's messages in order (an index for that check)

Revision ID: 0004_outbox_priority
Revises: 0003_inbound_processing
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_outbox_priority"
down_revision = "0003_inbound_processing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot drop a column in place (downgrade), Alembic rebuilds the table there.
    with op.batch_alter_table("outbox") as table:
        table.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="1"))
    op.create_index("ix_outbox_channel", "outbox", ["channel", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_channel", table_name="outbox")
    with op.batch_alter_table("outbox") as table:
        table.drop_column("priority")
