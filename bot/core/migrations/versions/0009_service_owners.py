"""Service owners as PagerDuty names them, looked up per service (docs/service-owners.md)

Revision ID: 0009_service_owners
Revises: 0008_review_flag
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # the package alone does not bind `sqlmodel.sql` for a type checker
from alembic import op

revision = "0009_service_owners"
down_revision = "0008_review_flag"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_owners",
        sa.Column("service_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("owner_kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("owner_url", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=True),
        sa.Column("looked_up_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("next_lookup_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("service_id"),
    )
    op.create_index("ix_service_owners_next_lookup_at", "service_owners", ["next_lookup_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_service_owners_next_lookup_at", table_name="service_owners")
    op.drop_table("service_owners")
