"""Each camera's engine state, checkpointed by the live service so a restart goes on with its dwell timers.

Revision ID: 0006_camera_state
Revises: 0005_night_progress
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0006_camera_state'
down_revision: Union[str, Sequence[str], None] = '0005_night_progress'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('camera_state',
    sa.Column('camera_id', sa.String(length=200), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False, comment='grows with every checkpoint of the camera (its frame time in microseconds)'),
    sa.Column('frame_at', sa.DateTime(timezone=True), nullable=False, comment='the frame time the state is as of'),
    sa.Column('state', sa.LargeBinary(), nullable=False, comment='Engine.snapshot_camera: compressed pickle'),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('camera_id', name=op.f('pk_camera_state'))
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('camera_state')
