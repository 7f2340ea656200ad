"""the operator's reason on every audit row of a run

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Already there when 0003 (or `concertops state init`) created the table from today's definition.
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("remediation_audit")}
    if "reason" not in columns:
        op.add_column(
            "remediation_audit", sa.Column("reason", sa.String(500), nullable=False, server_default="")
        )


def downgrade() -> None:
    op.drop_column("remediation_audit", "reason")
