"""The night job's progress per source, for resuming after a crash (issue 7).

Revision ID: 0005_night_progress
Revises: 0004_report_queue
Create Date: 2026-12-01
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0005_night_progress'
down_revision: Union[str, Sequence[str], None] = '0004_report_queue'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('night_progress',
    sa.Column('run_key', sa.String(length=64), nullable=False, comment='hash of the footage folder and every setting that changes the outcome'),
    sa.Column('source', sa.String(), nullable=False, comment="the video's path, or the image group's folder"),
    sa.Column('unit', sa.String(), nullable=False, comment="camera id, or 'patrol'"),
    sa.Column('item', sa.Integer(), nullable=False, comment="place of the source in its unit's order"),
    sa.Column('fingerprint', sa.String(length=64), nullable=False, comment="size of the video, or hash of the group's names and sizes"),
    sa.Column('status', sa.String(length=12), nullable=False, comment='partial | done | failed'),
    sa.Column('position', sa.Float(), nullable=False, comment='video seconds (or images done) from which to continue'),
    sa.Column('frames', sa.Integer(), nullable=False, comment='frames (or photos) handled in this source so far'),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('state', sa.LargeBinary(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('run_key', 'source', name=op.f('pk_night_progress'))
    )
    with op.batch_alter_table('night_progress', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_night_progress_run_key_unit'), ['run_key', 'unit'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('night_progress', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_night_progress_run_key_unit'))
    op.drop_table('night_progress')
