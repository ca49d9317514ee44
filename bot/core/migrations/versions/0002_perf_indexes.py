"""indexes for the KPIs and the digest, the PagerDuty waiting-notes lookup and the outbox claim

Revision ID: 0002_perf
Revises: 0001
"""

from alembic import op

revision = "0002_perf"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEXES = [
    (
        "incidents",
        "ix_incidents_service_durations",
        [
            "service_name",
            "triggered_at",
            "seconds_to_acknowledge",
            "seconds_to_first_response",
            "seconds_to_resolve",
            "seconds_to_document",
        ],
    ),
    ("incidents", "ix_incidents_service_resolve", ["service_name", "seconds_to_resolve", "triggered_at"]),
    ("incidents", "ix_incidents_service_document", ["service_name", "seconds_to_document", "triggered_at"]),
    ("incidents", "ix_incidents_resolve", ["seconds_to_resolve", "triggered_at"]),
    ("incidents", "ix_incidents_document", ["seconds_to_document", "triggered_at"]),
    ("incidents", "ix_incidents_unwritten", ["postmortem_published_at", "resolved_at"]),
    ("inbound_deliveries", "ix_inbound_deliveries_waiting", ["source", "error"]),
    ("outbox", "ix_outbox_message_key", ["message_key", "status"]),
]


def upgrade() -> None:
    for table, name, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for table, name, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
