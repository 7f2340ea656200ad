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
    op.add_column("remediation_audit", sa.Column("reason", sa.String(500), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("remediation_audit", "reason")
