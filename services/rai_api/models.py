"""The RAI API's tables as SQLAlchemy 2 models: users, chat_sessions, messages, login_failures.

These models are the schema's truth for `raictl migrate --repair` (drift detection) as well as for
the API; the Alembic revisions in `migrations/versions` must build exactly this schema at head.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Integer, String, Text, func
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    # Revision 0003: SQLite never gives a deleted user's id again (a token naming it must not open
    # the next account); MariaDB/MySQL never reuse an AUTO_INCREMENT value anyway.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, server_default=func.now())
    # Added by revision 0002: the column whose absence broke every login in the troubleshooting log.
    remembered_facts: Mapped[list | None] = mapped_column(JSON, nullable=True)

    sessions: Mapped[list[ChatSession]] = relationship(back_populates="user", cascade="all, delete-orphan",
                                                       passive_deletes=True)


class ChatSession(Base):
    __tablename__ = "chat_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, server_default=func.now())
    # Added by revision 0004: the session's own instructions, sent on every turn (NULL: the default persona).
    system_prompt: Mapped[str | None] = mapped_column(Text, nullable=True)

    user: Mapped[User] = relationship(back_populates="sessions")
    messages: Mapped[list[Message]] = relationship(back_populates="session", cascade="all, delete-orphan",
                                                   passive_deletes=True, order_by="Message.id")


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"),
                                            nullable=False, index=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    # Revision 0003: MEDIUMTEXT (16 MiB) on MariaDB/MySQL, whose TEXT holds 64 KiB: a longer reply was
    # lost after the model had generated it. rules.STORED_REPLY_MAX keeps every reply within it.
    content: Mapped[str] = mapped_column(Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, server_default=func.now())
    # Added by revision 0004: the tokens the engine reported for an assistant message (NULL otherwise).
    input_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    output_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)

    session: Mapped[ChatSession] = relationship(back_populates="messages")


class LoginFailure(Base):
    """Failed logins of one subject (`user:NAME` or `addr:IP`) in the window starting at `window_start`
    (epoch seconds): services.rai_api.throttle. Added by revision 0003."""

    __tablename__ = "login_failures"

    subject: Mapped[str] = mapped_column(String(120), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
    window_start: Mapped[int] = mapped_column(BigInteger, nullable=False)
