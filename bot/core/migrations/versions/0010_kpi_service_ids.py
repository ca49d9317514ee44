"""KPIs by service id, repeat incidents stored per incident, KPI indexes of counted incidents only

Revision ID: 0010_kpi_service_ids
Revises: 0009_service_owners
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # the package alone does not bind `sqlmodel.sql` for a type checker
from alembic import op

from bot.core.incident_table import recount_repeat_incidents

revision = "0010_kpi_service_ids"
down_revision = "0009_service_owners"
branch_labels = None
depends_on = None

_COUNTED = "merged_into IS NULL AND recorded_only IS NULL"
_OLD = {
    "ix_incidents_service_durations": [
        "service_name",
        "triggered_at",
        "seconds_to_acknowledge",
        "seconds_to_first_response",
        "seconds_to_resolve",
        "seconds_to_document",
    ],
    "ix_incidents_service_resolve": ["service_name", "seconds_to_resolve", "triggered_at"],
    "ix_incidents_service_document": ["service_name", "seconds_to_document", "triggered_at"],
    "ix_incidents_resolve": ["seconds_to_resolve", "triggered_at"],
    "ix_incidents_document": ["seconds_to_document", "triggered_at"],
}
_NEW = {
    "ix_incidents_kpi_service": [
        "service_key",
        "triggered_at",
        "id",
        "seconds_to_acknowledge",
        "seconds_to_first_response",
        "seconds_to_resolve",
        "seconds_to_document",
        "repeat_incident",
    ],
    "ix_incidents_kpi_service_resolve": ["service_key", "seconds_to_resolve", "triggered_at"],
    "ix_incidents_kpi_service_document": ["service_key", "seconds_to_document", "triggered_at"],
    "ix_incidents_kpi_resolve": ["seconds_to_resolve", "triggered_at"],
    "ix_incidents_kpi_document": ["seconds_to_document", "triggered_at"],
}


def upgrade() -> None:
    # Plain ADD COLUMN on both databases (no table copy on SQLite): the table may hold a million rows.
    op.add_column(
        "incidents", sa.Column("service_key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True)
    )
    op.add_column(
        "incidents", sa.Column("repeat_incident", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    # The old indexes go first and the new ones come last: every row is written twice below, and each
    # write would otherwise update every index.
    for name in _OLD:
        op.drop_index(name, table_name="incidents")
    # bot.core.incident_table.service_key_of, in SQL.
    op.execute(
        "UPDATE incidents SET service_key = CASE WHEN coalesce(service_id, '') <> '' THEN service_id"
        " WHEN service_name IS NOT NULL THEN 'name:' || service_name END"
    )
    recount_repeat_incidents(op.get_bind())
    op.create_index("ix_incidents_service_key_triggered", "incidents", ["service_key", "triggered_at", "id"])
    counted = sa.text(_COUNTED)
    for name, columns in _NEW.items():
        filtered = [*columns, "merged_into", "recorded_only"]  # so SQLite reads the index alone
        op.create_index(name, "incidents", filtered, sqlite_where=counted, postgresql_where=counted)


def downgrade() -> None:
    for name in _NEW:
        op.drop_index(name, table_name="incidents")
    op.drop_index("ix_incidents_service_key_triggered", table_name="incidents")
    for name, columns in _OLD.items():
        op.create_index(name, "incidents", columns)
    with op.batch_alter_table("incidents") as table:
        table.drop_column("repeat_incident")
        table.drop_column("service_key")
