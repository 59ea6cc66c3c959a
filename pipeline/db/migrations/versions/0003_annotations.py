"""Annotations: every review decision and box edit on a case's frame, one row per save, never updated.

Revision ID: 0003_annotations
Revises: 0002_api_keys
Create Date: 2026-12-01
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0003_annotations'
down_revision: Union[str, Sequence[str], None] = '0002_api_keys'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('annotations',
    sa.Column('id', Id, nullable=False),
    sa.Column('case_id', Id, nullable=False),
    sa.Column('frame_sha256', sa.String(length=64), nullable=True, comment="the evidence store's best frame the boxes are on"),
    sa.Column('action', sa.String(length=16), nullable=False, comment='boxes | dispatch | reject | import'),
    sa.Column('reviewer', sa.String(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False, comment='review-page | cli | api | import:<format>'),
    sa.Column('model', sa.String(), nullable=True, comment="the model that proposed the frame's boxes"),
    sa.Column('event_id', Id, nullable=True, comment='the case transition a decision made'),
    sa.Column('frame_size', sa.JSON(), nullable=True, comment='[width, height] of the frame, pixels'),
    sa.Column('boxes', sa.JSON(), nullable=True, comment="the frame's full label set: [{class_name, box xyxy px, origin, proposal, score}]"),
    sa.Column('negatives', sa.JSON(), nullable=True, comment='model boxes the reviewer deleted: hard negatives [{class_name, box, proposal}]'),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_annotations_case_id_cases')),
    sa.ForeignKeyConstraint(['event_id'], ['case_events.id'], name=op.f('fk_annotations_event_id_case_events')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotations'))
    )
    op.create_index(op.f('ix_annotations_at'), 'annotations', ['at'], unique=False)
    op.create_index(op.f('ix_annotations_frame_sha256'), 'annotations', ['frame_sha256'], unique=False)
    op.create_index(op.f('ix_annotations_case_id_frame_sha256_id'), 'annotations', ['case_id', 'frame_sha256', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_annotations_case_id_frame_sha256_id'), table_name='annotations')
    op.drop_index(op.f('ix_annotations_frame_sha256'), table_name='annotations')
    op.drop_index(op.f('ix_annotations_at'), table_name='annotations')
    op.drop_table('annotations')
