"""API tokens: the table and its queries. What a token is (its format, its hash, who may
make one, when it is refused) is decided above, in :mod:`backout.commands.tokens`; this
module only reads and writes rows, and never sees a token's secret, only its hash."""

from __future__ import annotations

from sqlalchemy import Float, Integer, String, Text, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from backout.store.models import Base


class TokenRow(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text)  # a label: what or who the token is for
    actor: Mapped[str] = mapped_column(String(200))  # who a request with it acts as
    role: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)  # sha256 hex
    prefix: Mapped[str] = mapped_column(String(16))  # the token's first characters
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # None: never
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


def add(session: Session, row: TokenRow) -> TokenRow:
    session.add(row)
    session.flush()
    return row


def get(session: Session, token_id: int, *, for_update: bool = False) -> TokenRow | None:
    """One token by id; ``for_update`` locks its row until the transaction ends (PostgreSQL;
    SQLite's writer already holds the only lock)."""
    query = select(TokenRow).where(TokenRow.id == token_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def by_hash(session: Session, secret_hash: str) -> TokenRow | None:
    return session.scalars(select(TokenRow).where(TokenRow.secret_hash == secret_hash)).first()


def tokens(session: Session) -> list[TokenRow]:
    """Every token, revoked and expired ones too, newest first."""
    return list(session.scalars(select(TokenRow).order_by(TokenRow.id.desc())))


def revoke(session: Session, row: TokenRow, actor: str, reason: str, at: float) -> None:
    row.revoked_at = at
    row.revoked_by = actor
    row.revoke_reason = reason
    session.flush()


def touch(session: Session, token_id: int, at: float, every: float) -> bool:
    """Record a use at ``at`` unless one was recorded less than ``every`` seconds before;
    one conditional UPDATE, so concurrent requests write it once. Whether it was written."""
    statement = (
        update(TokenRow)
        .where(
            TokenRow.id == token_id,
            or_(TokenRow.last_used_at.is_(None), TokenRow.last_used_at <= at - every),
        )
        .values(last_used_at=at)
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]
