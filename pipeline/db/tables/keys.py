"""API keys and review sessions (service auth, issue 8); `service.http.keys` reads and writes them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Id


class ApiKey(Base):
    """A service API key with one role. Only the SHA-256 of the key is kept: the key is 256 random bits, so a
    plain fast hash is enough (no salt or slow hash needed), and the database alone never lets anyone in."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(), comment="who holds it; recorded as the actor of their actions")
    role: Mapped[str] = mapped_column(String(16), comment="camera | reviewer | admin")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, comment="sha256 hex of the key")
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class ReviewSession(Base):
    """A review-page login: the browser holds a random token, this table its SHA-256, the key it came from and
    when it ends. Logout deletes the row; revoking the key ends its sessions."""

    __tablename__ = "review_sessions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[int] = mapped_column(Id, ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
