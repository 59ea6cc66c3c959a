"""Case ledger: cases, the incidents folded into them, their history and evidence, and the delivery outbox.

Revision ID: 0001
Revises: 
Create Date: 2026-11-21
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('cases',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('severity', sa.Integer(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('camera_id', sa.String(), nullable=True),
    sa.Column('zone_id', sa.String(), nullable=True),
    sa.Column('box', sa.JSON(), nullable=True, comment="xyxy pixels on camera_id's frame"),
    sa.Column('district', sa.String(), nullable=False),
    sa.Column('street', sa.String(), nullable=False),
    sa.Column('point', sa.String(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('owner', sa.String(), nullable=True),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rectified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rejected_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reopened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('relapse_count', sa.Integer(), nullable=False),
    sa.Column('escalation_count', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False, comment='bumped on every change; outbound messages carry it'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cases'))
    )
    op.create_index(op.f('ix_cases_camera_id_status'), 'cases', ['camera_id', 'status'], unique=False)
    op.create_index(op.f('ix_cases_status_deadline_at'), 'cases', ['status', 'deadline_at'], unique=False)
    op.create_index(op.f('ix_cases_type_status_district_point'), 'cases', ['type', 'status', 'district', 'point'], unique=False)

    op.create_table('case_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('case_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False, comment='created | transition | relapse | merged | escalated | evidence_purged'),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('incident_id', sa.String(length=200), nullable=True),
    sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=True, comment='the deadline set by a dispatch, kept for historical reports'),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_events_case_id_cases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_events'))
    )
    op.create_index(op.f('ix_case_events_at'), 'case_events', ['at'], unique=False)
    op.create_index(op.f('ix_case_events_case_id'), 'case_events', ['case_id'], unique=False)

    op.create_table('case_evidence',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('case_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('incident_id', sa.String(length=200), nullable=True),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('purged_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_evidence_case_id_cases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_evidence')),
    sa.UniqueConstraint('case_id', 'sha256', 'kind', name=op.f('uq_case_evidence_case_id_sha256_kind'))
    )
    op.create_index(op.f('ix_case_evidence_case_id'), 'case_evidence', ['case_id'], unique=False)
    op.create_index(op.f('ix_case_evidence_sha256'), 'case_evidence', ['sha256'], unique=False)

    op.create_table('case_incidents',
    sa.Column('incident_id', sa.String(length=200), nullable=False),
    sa.Column('case_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('camera_id', sa.String(), nullable=True),
    sa.Column('zone_id', sa.String(), nullable=True),
    sa.Column('box', sa.JSON(), nullable=True),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended', sa.Boolean(), nullable=False),
    sa.Column('severity', sa.Integer(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('posted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_incidents_case_id_cases')),
    sa.PrimaryKeyConstraint('incident_id', name=op.f('pk_case_incidents'))
    )
    op.create_index(op.f('ix_case_incidents_case_id'), 'case_incidents', ['case_id'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False, comment='webhook | mqtt'),
    sa.Column('topic', sa.String(length=300), nullable=True, comment='MQTT topic; null for the webhook'),
    sa.Column('idempotency_key', sa.String(length=100), nullable=False),
    sa.Column('case_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False, comment='the exact JSON body sent (and signed)'),
    sa.Column('status', sa.String(length=12), nullable=False, comment='pending | delivered | dead'),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_outbox_case_id_cases')),
    sa.ForeignKeyConstraint(['event_id'], ['case_events.id'], name=op.f('fk_outbox_event_id_case_events')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('channel', 'idempotency_key', name=op.f('uq_outbox_channel_idempotency_key'))
    )
    op.create_index(op.f('ix_outbox_case_id'), 'outbox', ['case_id'], unique=False)
    op.create_index(op.f('ix_outbox_channel_status_id'), 'outbox', ['channel', 'status', 'id'], unique=False)



def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f('ix_outbox_channel_status_id'), table_name='outbox')
    op.drop_index(op.f('ix_outbox_case_id'), table_name='outbox')

    op.drop_table('outbox')
    op.drop_index(op.f('ix_case_incidents_case_id'), table_name='case_incidents')

    op.drop_table('case_incidents')
    op.drop_index(op.f('ix_case_evidence_sha256'), table_name='case_evidence')
    op.drop_index(op.f('ix_case_evidence_case_id'), table_name='case_evidence')

    op.drop_table('case_evidence')
    op.drop_index(op.f('ix_case_events_case_id'), table_name='case_events')
    op.drop_index(op.f('ix_case_events_at'), table_name='case_events')

    op.drop_table('case_events')
    op.drop_index(op.f('ix_cases_type_status_district_point'), table_name='cases')
    op.drop_index(op.f('ix_cases_status_deadline_at'), table_name='cases')
    op.drop_index(op.f('ix_cases_camera_id_status'), table_name='cases')

    op.drop_table('cases')
