"""index queue_token by user: a payment releases its user's token without locking a range

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_queue_token_user_status", "queue_token", ["user_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_queue_token_user_status", table_name="queue_token")
