"""remediation audit rows and the apply lock's holder

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "remediation_audit",
        sa.Column("audit_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("runbook", sa.String(16), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("params", sa.String(2000), nullable=False),
        sa.Column("operator", sa.String(100), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("profile", sa.String(100), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("affected", sa.Integer, nullable=True),
        sa.Column("detail", sa.String(1000), nullable=False),
    )
    op.create_index("ix_remediation_audit_run_id", "remediation_audit", ["run_id"])
    op.create_index("ix_remediation_audit_runbook_started", "remediation_audit", ["runbook", "started_at"])
    op.create_table(
        "remediation_lock",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(300), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("acquired_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("remediation_lock")
    op.drop_index("ix_remediation_audit_runbook_started", table_name="remediation_audit")
    op.drop_index("ix_remediation_audit_run_id", table_name="remediation_audit")
    op.drop_table("remediation_audit")
