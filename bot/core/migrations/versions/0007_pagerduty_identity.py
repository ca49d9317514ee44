"""PagerDuty incidents keyed by account and id; reopen, merge, record-only incidents, their people

Revision ID: 0007_pagerduty_identity
Revises: 0006_trackers
"""

from urllib.parse import urlsplit

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # the package alone does not bind `sqlmodel.sql` for a type checker
from alembic import op

revision = "0007_pagerduty_identity"
down_revision = "0006_trackers"
branch_labels = None
depends_on = None

# 0001 left the unique constraint on pagerduty_id unnamed: PostgreSQL named it itself, and SQLite's
# reflected copy gets this name from the naming convention so batch mode can drop it.
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _old_unique_name() -> str:
    return (
        "incidents_pagerduty_id_key"
        if op.get_bind().dialect.name == "postgresql"
        else "uq_incidents_pagerduty_id"
    )


def upgrade() -> None:
    with op.batch_alter_table("incidents", naming_convention=_NAMING) as table:
        table.add_column(
            sa.Column(
                "pagerduty_account",
                sqlmodel.sql.sqltypes.AutoString(length=255),
                nullable=False,
                server_default="",
            )
        )
        table.add_column(sa.Column("reopened_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        table.add_column(sa.Column("pagerduty_people", sa.JSON(), nullable=False, server_default="[]"))
        table.add_column(sa.Column("merged_into", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        table.add_column(
            sa.Column("recorded_only", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True)
        )
        table.drop_constraint(_old_unique_name(), type_="unique")
        table.create_unique_constraint("uq_incidents_pagerduty", ["pagerduty_account", "pagerduty_id"])
        table.create_index("ix_incidents_service_id_triggered", ["service_id", "triggered_at"], unique=False)
    # Existing PagerDuty incidents get their account from the link PagerDuty gave them.
    incidents = sa.table(
        "incidents",
        sa.column("id"),
        sa.column("html_url"),
        sa.column("pagerduty_account"),
        sa.column("pagerduty_id"),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(incidents.c.id, incidents.c.html_url).where(
            incidents.c.pagerduty_id.is_not(None), incidents.c.html_url.is_not(None)
        )
    ).all()
    for row_id, html_url in rows:
        host = (urlsplit(html_url).hostname or "")[:255]
        bind.execute(incidents.update().where(incidents.c.id == row_id).values(pagerduty_account=host))


def downgrade() -> None:
    with op.batch_alter_table("incidents", naming_convention=_NAMING) as table:
        table.drop_index("ix_incidents_service_id_triggered")
        table.drop_constraint("uq_incidents_pagerduty", type_="unique")
        table.create_unique_constraint(_old_unique_name(), ["pagerduty_id"])
        table.drop_column("recorded_only")
        table.drop_column("merged_into")
        table.drop_column("pagerduty_people")
        table.drop_column("reopened_at")
        table.drop_column("pagerduty_account")
