"""Camera outages: a camera whose stream stayed down longer than its offline_after_s (issue 23).

Revision ID: 0007_camera_outages
Revises: 0006_camera_state
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0007_camera_outages'
down_revision: Union[str, Sequence[str], None] = '0006_camera_state'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('camera_outages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('camera_id', sa.String(length=200), nullable=False),
    sa.Column('district', sa.String(), nullable=False),
    sa.Column('street', sa.String(), nullable=False),
    sa.Column('point', sa.String(), nullable=False),
    sa.Column('owner', sa.String(), nullable=True),
    sa.Column('stream_kind', sa.String(length=8), nullable=False, comment='rtsp | http'),
    sa.Column('down_since', sa.DateTime(timezone=True), nullable=False, comment="the last picture before the outage, or the service's start when there was none"),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False, comment='when it was declared offline (down_since + offline_after_s)'),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True, comment='the first picture after it; null while the camera is dark'),
    sa.Column('error', sa.Text(), nullable=True, comment='why the stream failed, credentials redacted'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_camera_outages'))
    )
    with op.batch_alter_table('camera_outages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_camera_outages_district_down_since'), ['district', 'down_since'], unique=False)
        batch_op.create_index('uq_camera_outages_open', ['camera_id'], unique=True, postgresql_where=sa.text('ended_at IS NULL'), sqlite_where=sa.text('ended_at IS NULL'))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('camera_outages', schema=None) as batch_op:
        batch_op.drop_index('uq_camera_outages_open')
        batch_op.drop_index(batch_op.f('ix_camera_outages_district_down_since'))
    op.drop_table('camera_outages')
