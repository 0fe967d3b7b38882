"""user_svc's use cases; each is one transaction (inbox check, change, outbox rows)."""

import logging
from datetime import UTC, datetime
from uuid import UUID, uuid4

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from common.inbox import first_delivery
from common.outbox import stage
from common.outcomes import Refused
from common.unit_of_work import SessionMaker
from schemas.envelope import Envelope
from schemas.users import AddAddress, AddressAdded, UpdateUser, UserRegistered, UserUpdated
from user_svc.models import (
    Address,
    Inbox,
    Outbox,
    RefreshFamily,
    Role,
    UsedRefreshToken,
    User,
)
from user_svc.passwords import Passwords

log = logging.getLogger(__name__)


class EmailTakenError(ValueError):
    """Another account already uses this email."""


async def register_user(
    sessionmaker: SessionMaker,
    passwords: Passwords,
    *,
    name: str,
    email: str,
    password: str,
    role: str = "Customer",
) -> User:
    password_hash = await passwords.hash_password(password)
    try:
        async with sessionmaker.begin() as session:
            role_id = await session.scalar(select(Role.id).where(Role.name == role))
            user = User(
                id=uuid4(), name=name, email=email.lower(), password=password_hash, role_id=role_id
            )
            session.add(user)
            await session.flush()
            stage(
                session,
                Outbox,
                UserRegistered(user_id=user.id, name=name, email=user.email, role=role),
            )
    except IntegrityError as exc:
        raise EmailTakenError(email) from exc
    return user


async def verify_credentials(
    sessionmaker: SessionMaker, passwords: Passwords, email: str, password: str
) -> tuple[User, str] | None:
    """The user and role name when the password matches; None otherwise (same work either way)."""
    async with sessionmaker() as session:
        row = (
            await session.execute(
                select(User, Role.name)
                .join(Role, Role.id == User.role_id)
                .where(User.email == email.lower())
            )
        ).first()
    if row is None:
        await passwords.verify_no_one(password)
        return None
    user, role = row
    return (user, role) if await passwords.verify_password(user.password, password) else None


async def ensure_admin(
    sessionmaker: SessionMaker, passwords: Passwords, *, email: str, password: str
) -> bool:
    """Create the first admin from the environment unless that account exists; True if created."""
    async with sessionmaker() as session:
        if await session.scalar(select(User.id).where(User.email == email.lower())):
            return False
    try:
        await register_user(
            sessionmaker, passwords, name="Admin", email=email, password=password, role="Admin"
        )
    except EmailTakenError:
        return False  # another replica created it
    return True


async def update_user(sessionmaker: SessionMaker, envelope: Envelope, command: UpdateUser) -> None:
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return
        user = await session.get(User, command.user_id, with_for_update=True)
        if user is None:
            return
        user.name = command.name
        stage(
            session,
            Outbox,
            UserUpdated(user_id=user.id, name=user.name, email=user.email),
            cause=envelope,
        )


async def add_address(
    sessionmaker: SessionMaker, envelope: Envelope, command: AddAddress
) -> Refused | None:
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return None
        if await session.get(User, command.user_id) is None:
            log.warning(
                "address %s of unknown user %s ignored", command.address_id, command.user_id
            )
            return Refused("user not found", status=404)
        fields = command.model_dump(exclude={"address_id"})
        session.add(Address(id=command.address_id, **fields))
        stage(session, Outbox, AddressAdded(**command.model_dump()), cause=envelope)
    return None


async def use_refresh_token(
    sessionmaker: SessionMaker, *, jti: str, family: UUID, user_id: UUID, expires_at: datetime
) -> bool:
    """Record the one use a refresh token has. False when it was used before, which revokes its
    whole family (whoever holds a later token of that sign-in is shut out too), or when the
    family is revoked already. Uses of one family are serialised by a row lock, so two replicas
    racing with the same token see one success."""
    async with sessionmaker.begin() as session:
        await session.execute(
            insert(RefreshFamily)
            .values(id=family, user_id=user_id, expires_at=expires_at)
            .on_conflict_do_nothing(index_elements=[RefreshFamily.id])
        )
        chain = await session.get(
            RefreshFamily, family, with_for_update=True, populate_existing=True
        )
        if chain is None or chain.user_id != user_id or chain.revoked_at is not None:
            return False
        if await session.get(UsedRefreshToken, jti) is not None:
            chain.revoked_at = datetime.now(UTC)
            return False
        session.add(UsedRefreshToken(jti=jti, family_id=family, expires_at=expires_at))
        chain.expires_at = max(chain.expires_at, expires_at)
        return True
