"""user_svc's reads for its HTTP API; no writes."""

from datetime import datetime
from uuid import UUID

from sqlalchemy import select

from common.pagination import page_after
from common.unit_of_work import SessionMaker
from user_svc.models import Address, Role, User


async def list_addresses(
    sessionmaker: SessionMaker, user_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
) -> list[Address]:
    query = select(Address).where(Address.user_id == user_id)
    query = page_after(query, Address.created_at, Address.id, after=after, limit=limit)
    async with sessionmaker() as session:
        return list(await session.scalars(query))


async def get_user(sessionmaker: SessionMaker, user_id: UUID) -> tuple[User, str] | None:
    async with sessionmaker() as session:
        row = (
            await session.execute(
                select(User, Role.name)
                .join(Role, Role.id == User.role_id)
                .where(User.id == user_id)
            )
        ).first()
    return (row[0], row[1]) if row else None


async def get_address(
    sessionmaker: SessionMaker, user_id: UUID, address_id: UUID
) -> Address | None:
    async with sessionmaker() as session:
        address = await session.get(Address, address_id)
    return address if address is not None and address.user_id == user_id else None
