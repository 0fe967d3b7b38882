"""product_svc's HTTP API, called by the gateway (never by clients directly)."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel

from common.http import ReadConnections, Reads, serialized
from common.pagination import Cursor, Limit, decode_cursor, page
from product_svc import queries
from schemas.envelope import Money

router = APIRouter(tags=["catalog"])


class CategoryPublic(BaseModel):
    id: UUID
    name: str


class CategoryPage(BaseModel):
    items: list[CategoryPublic]
    next_cursor: str | None


class ImagePublic(BaseModel):
    id: UUID
    url: str


class ProductPublic(BaseModel):
    id: UUID
    name: str
    description: str
    price: Money
    category_id: UUID | None
    images: list[ImagePublic]
    stock: int
    created_at: datetime
    updated_at: datetime


class ProductPage(BaseModel):
    items: list[ProductPublic]
    next_cursor: str | None


@router.get(
    "/categories", response_model=CategoryPage, responses={422: {"description": "bad cursor"}}
)
async def list_categories(sessions: Reads, limit: Limit = 50, cursor: Cursor = None) -> Response:
    """Every category, oldest first; pass ``next_cursor`` back as ``cursor`` for more."""
    rows = await queries.list_categories(sessions, after=decode_cursor(cursor), limit=limit + 1)
    items, next_cursor = page(rows, limit)
    return serialized(
        CategoryPage(
            items=[CategoryPublic(id=row.id, name=row.name) for row in items],
            next_cursor=next_cursor,
        )
    )


@router.get("/categories/{category_id}", responses={404: {"description": "no such category"}})
async def read_category(category_id: UUID, sessions: Reads) -> CategoryPublic:
    """One category."""
    category = await queries.get_category(sessions, category_id)
    if category is None:
        raise HTTPException(404, "category not found")
    return CategoryPublic(id=category.id, name=category.name)


@router.get(
    "/products",
    response_model=ProductPage,
    responses={422: {"description": "bad filter or cursor"}},
)
async def list_products(
    pool: ReadConnections,
    category_id: UUID | None = None,
    q: Annotated[
        str | None,
        Query(max_length=100, description="part of the name or description, any case"),
    ] = None,
    min_price: Annotated[Decimal | None, Query(ge=0, max_digits=10, decimal_places=2)] = None,
    max_price: Annotated[Decimal | None, Query(ge=0, max_digits=10, decimal_places=2)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """The catalog with stock and images, oldest first, filtered; pass ``next_cursor`` back as
    ``cursor`` (with the same filters) for more."""
    rows = await queries.list_products(
        pool,
        category_id=category_id,
        text=q,
        min_price=min_price,
        max_price=max_price,
        after=decode_cursor(cursor),
        limit=limit + 1,
    )
    items, next_cursor = page(rows, limit)
    return serialized(
        ProductPage(items=[_public(entry) for entry in items], next_cursor=next_cursor)
    )


@router.get("/products/{product_id}", responses={404: {"description": "no such product"}})
async def read_product(product_id: UUID, pool: ReadConnections) -> ProductPublic:
    """One product with its stock and images."""
    entry = await queries.get_product(pool, product_id)
    if entry is None:
        raise HTTPException(404, "product not found")
    return _public(entry)


def _public(entry: queries.CatalogEntry) -> ProductPublic:
    product = entry.product
    return ProductPublic(
        id=product.id,
        name=product.name,
        description=product.description,
        price=product.price,
        category_id=product.category_id,
        images=[ImagePublic(id=image.id, url=image.url) for image in entry.images],
        stock=entry.stock,
        created_at=product.created_at,
        updated_at=product.updated_at,
    )
