"""outbox rows have a priority: a new incident's channel and card go before a digest or a nudge

Revision ID: 0006_outbox_priority
Revises: 0003_inbound_processing
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_outbox_priority"
down_revision = "0003_inbound_processing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot drop a column in place (downgrade), Alembic rebuilds the table there.
    with op.batch_alter_table("outbox") as table:
        table.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as table:
        table.drop_column("priority")
