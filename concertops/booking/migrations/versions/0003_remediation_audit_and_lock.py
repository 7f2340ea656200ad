"""remediation audit rows and the apply lock's holder

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # concertops's own tables, from the one definition `concertops state init` also creates them from: in
    # either order, whichever comes second finds them there.
    from concertops.contract.schema import remediation_audit, remediation_lock

    bind = op.get_bind()
    remediation_audit.create(bind, checkfirst=True)
    remediation_lock.create(bind, checkfirst=True)


def downgrade() -> None:
    op.drop_table("remediation_lock")
    op.drop_index("ix_remediation_audit_runbook_started", table_name="remediation_audit")
    op.drop_index("ix_remediation_audit_run_id", table_name="remediation_audit")
    op.drop_table("remediation_audit")
