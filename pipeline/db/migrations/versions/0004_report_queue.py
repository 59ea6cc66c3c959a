"""Durable intake: per-camera last frame time, and the quarantine of incident reports the ledger refused.

Revision ID: 0004_report_queue
Revises: 0003_annotations
Create Date: 2026-12-01
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0004_report_queue'
down_revision: Union[str, Sequence[str], None] = '0003_annotations'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('camera_frames',
    sa.Column('camera_id', sa.String(length=200), nullable=False),
    sa.Column('last_frame_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('camera_id', name=op.f('pk_camera_frames'))
    )
    op.create_table('report_quarantine',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('incident_id', sa.String(length=200), nullable=False),
    sa.Column('camera_id', sa.String(), nullable=True),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('error_type', sa.String(length=100), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=False, comment='when the service first had the report'),
    sa.Column('quarantined_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_quarantine'))
    )
    op.create_index(op.f('ix_report_quarantine_incident_id'), 'report_quarantine', ['incident_id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f('ix_report_quarantine_incident_id'), table_name='report_quarantine')
    op.drop_table('report_quarantine')
    op.drop_table('camera_frames')
