"""product_svc's reads for its HTTP API; no writes."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import SessionMaker
from common.pagination import page_after
from product_svc.models import Category, Inventory, Product, ProductImage


@dataclass(frozen=True)
class CatalogEntry:
    """A product as the catalog shows it: with its stock and images."""

    product: Product
    stock: int
    images: Sequence[ProductImage]

    @property
    def id(self) -> UUID:
        return self.product.id

    @property
    def created_at(self) -> datetime:
        return self.product.created_at


async def list_categories(
    sessionmaker: SessionMaker, *, after: tuple[datetime, UUID] | None, limit: int
) -> list[Category]:
    query = page_after(select(Category), Category.created_at, Category.id, after=after, limit=limit)
    async with sessionmaker() as session:
        return list(await session.scalars(query))


async def get_category(sessionmaker: SessionMaker, category_id: UUID) -> Category | None:
    async with sessionmaker() as session:
        return await session.get(Category, category_id)


async def list_products(
    sessionmaker: SessionMaker,
    *,
    category_id: UUID | None = None,
    text: str | None = None,
    min_price: Decimal | None = None,
    max_price: Decimal | None = None,
    after: tuple[datetime, UUID] | None = None,
    limit: int,
) -> list[CatalogEntry]:
    """Products in catalog order (created_at, then id) after ``after``, filtered; ``text`` is a
    case-insensitive part of the name or the description."""
    query = _with_stock()
    if category_id is not None:
        query = query.where(Product.category_id == category_id)
    if text:
        query = query.where(
            Product.name.icontains(text, autoescape=True)
            | Product.description.icontains(text, autoescape=True)
        )
    if min_price is not None:
        query = query.where(Product.price >= min_price)
    if max_price is not None:
        query = query.where(Product.price <= max_price)
    query = page_after(query, Product.created_at, Product.id, after=after, limit=limit)
    async with sessionmaker() as session:
        return await _entries(session, query)


async def get_product(sessionmaker: SessionMaker, product_id: UUID) -> CatalogEntry | None:
    async with sessionmaker() as session:
        entries = await _entries(session, _with_stock().where(Product.id == product_id))
    return entries[0] if entries else None


def _with_stock() -> Select[Product, int]:
    return select(Product, Inventory.stock).outerjoin(Inventory, Inventory.product_id == Product.id)


async def _entries(session: AsyncSession, query: Select[Product, int]) -> list[CatalogEntry]:
    """The products of ``query`` with their images: two queries for a whole page."""
    rows = (await session.execute(query)).all()
    images: dict[UUID, list[ProductImage]] = {product.id: [] for product, _ in rows}
    if images:
        for image in await session.scalars(
            select(ProductImage)
            .where(ProductImage.product_id.in_(images))
            .order_by(ProductImage.created_at, ProductImage.id)
        ):
            images[image.product_id].append(image)
    # every product has an inventory row; the outer join only keeps a broken one visible
    return [
        CatalogEntry(product=product, stock=stock or 0, images=images[product.id])
        for product, stock in rows
    ]
