"""The catalog: anyone browses; admins create, change and restock."""

from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from common.pagination import Cursor, Limit
from gateway_svc.api.accounts import Page
from gateway_svc.api.deps import Commands, Upstream, accepted, write_responses, written
from gateway_svc.api.fields import Text
from gateway_svc.auth import ADMIN_RESPONSES, Admin
from schemas.envelope import Money
from schemas.products import (
    AddProductImage,
    CreateCategory,
    CreateProduct,
    RestockProduct,
    UpdateProduct,
)

router = APIRouter(tags=["catalog"])

Price = Annotated[Decimal, Field(gt=0, max_digits=10, decimal_places=2)]


class CategoryCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=255)


class CategoryPublic(BaseModel):
    id: UUID
    name: str


class ProductCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=255)
    description: Text = Field(default="", max_length=10_000)
    price: Price
    category_id: UUID | None = None
    stock: int = Field(default=0, ge=0, le=1_000_000, description="the first stock (a Restock)")


class ProductUpdate(BaseModel):
    name: Text | None = Field(default=None, min_length=1, max_length=255)
    description: Text | None = Field(default=None, max_length=10_000)
    price: Price | None = None
    category_id: UUID | None = None

    @model_validator(mode="after")
    def something_to_change(self) -> "ProductUpdate":
        if not self.model_fields_set:
            raise ValueError("give at least one of name, description, price, category_id")
        return self


class ImageCreate(BaseModel):
    url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://[^\s\x00]+$")


class Restock(BaseModel):
    change: int = Field(ge=-1_000_000, le=1_000_000, description="units added (or removed, < 0)")
    reason: Text = Field(default="Restock", min_length=1, max_length=50)

    @model_validator(mode="after")
    def not_zero(self) -> "Restock":
        if self.change == 0:
            raise ValueError("change must not be 0")
        return self


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


@router.get("/categories", response_model=Page)
async def list_categories(upstream: Upstream, limit: Limit = 50, cursor: Cursor = None) -> Response:
    """Every category."""
    return await upstream.relay("product", "/categories", {"limit": limit, "cursor": cursor})


@router.get("/categories/{category_id}", responses={404: {"description": "no such category"}})
async def read_category(category_id: UUID, upstream: Upstream) -> CategoryPublic:
    """One category."""
    return CategoryPublic.model_validate(
        await upstream.get("product", f"/categories/{category_id}")
    )


@router.post(
    "/categories",
    status_code=201,
    response_model=CategoryPublic,
    responses={**ADMIN_RESPONSES, **write_responses(CategoryPublic)},
)
async def create_category(body: CategoryCreate, _: Admin, commands: Commands) -> JSONResponse:
    """Create a category (admin); usable in the next request."""
    category_id = uuid4()
    location = f"/categories/{category_id}"
    if await commands.apply("product", CreateCategory(category_id=category_id, name=body.name)):
        return written(CategoryPublic(id=category_id, name=body.name), location)
    return accepted(category_id, location)


@router.get("/products", response_model=Page)
async def list_products(
    upstream: Upstream,
    category_id: UUID | None = None,
    q: Annotated[
        Text | None, Query(max_length=100, description="text in name or description")
    ] = None,
    min_price: Annotated[Decimal | None, Query(ge=0, max_digits=10, decimal_places=2)] = None,
    max_price: Annotated[Decimal | None, Query(ge=0, max_digits=10, decimal_places=2)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """The catalog with stock and images; filter by category, text and price range."""
    params = {
        "category_id": category_id,
        "q": q,
        "min_price": min_price,
        "max_price": max_price,
        "limit": limit,
        "cursor": cursor,
    }
    return await upstream.relay("product", "/products", params)


@router.get("/products/{product_id}", responses={404: {"description": "no such product"}})
async def read_product(product_id: UUID, upstream: Upstream) -> ProductPublic:
    """One product with its images and stock."""
    return await _product(upstream, product_id)


async def _product(upstream: Upstream, product_id: UUID) -> ProductPublic:
    return ProductPublic.model_validate(await upstream.get("product", f"/products/{product_id}"))


NO_SUCH_PRODUCT: dict[int | str, dict[str, Any]] = {404: {"description": "no such product"}}
NO_SUCH_CATEGORY: dict[int | str, dict[str, Any]] = {
    422: {"description": "invalid input, or no such category"}
}


@router.post(
    "/products",
    status_code=201,
    response_model=ProductPublic,
    responses={**ADMIN_RESPONSES, **NO_SUCH_CATEGORY, **write_responses(ProductPublic)},
)
async def create_product(
    body: ProductCreate, _: Admin, upstream: Upstream, commands: Commands
) -> JSONResponse:
    """Create a product (admin), optionally with its first stock; readable, and orderable, in
    the next request."""
    product_id = uuid4()
    location = f"/products/{product_id}"
    command = CreateProduct(
        product_id=product_id,
        name=body.name,
        description=body.description,
        price=body.price,
        category_id=body.category_id,
        initial_stock=body.stock,
    )
    if await commands.apply("product", command):
        return written(await _product(upstream, product_id), location)
    return accepted(product_id, location)


@router.patch(
    "/products/{product_id}",
    response_model=ProductPublic,
    responses={
        **ADMIN_RESPONSES,
        **NO_SUCH_PRODUCT,
        **NO_SUCH_CATEGORY,
        **write_responses(ProductPublic, 200),
    },
)
async def update_product(
    product_id: UUID, body: ProductUpdate, _: Admin, upstream: Upstream, commands: Commands
) -> JSONResponse:
    """Change a product's name, description, price or category (admin); answers the product
    as it is now."""
    location = f"/products/{product_id}"
    command = UpdateProduct(product_id=product_id, **body.model_dump(exclude_unset=True))
    if await commands.apply("product", command):
        return written(await _product(upstream, product_id), location, 200)
    return accepted(product_id, location)


@router.post(
    "/products/{product_id}/images",
    status_code=201,
    response_model=ImagePublic,
    responses={**ADMIN_RESPONSES, **NO_SUCH_PRODUCT, **write_responses(ImagePublic)},
)
async def add_image(
    product_id: UUID, body: ImageCreate, _: Admin, commands: Commands
) -> JSONResponse:
    """Add an image to a product (admin); the product shows it in the next request."""
    image_id = uuid4()
    location = f"/products/{product_id}"
    command = AddProductImage(image_id=image_id, product_id=product_id, url=body.url)
    if await commands.apply("product", command):
        return written(ImagePublic(id=image_id, url=body.url), location)
    return accepted(image_id, location)


@router.post(
    "/products/{product_id}/stock",
    response_model=ProductPublic,
    responses={
        **ADMIN_RESPONSES,
        **NO_SUCH_PRODUCT,
        409: {"description": "stock would go below zero"},
        **write_responses(ProductPublic, 200),
    },
)
async def restock(
    product_id: UUID, body: Restock, _: Admin, upstream: Upstream, commands: Commands
) -> JSONResponse:
    """Add (or remove) stock (admin); every change lands in the ledger. Answers the product
    with its stock after the change."""
    location = f"/products/{product_id}"
    command = RestockProduct(product_id=product_id, change=body.change, reason=body.reason)
    if await commands.apply("product", command):
        return written(await _product(upstream, product_id), location, 200)
    return accepted(product_id, location)


@router.get("/products/{product_id}/movements", responses=ADMIN_RESPONSES, response_model=Page)
async def movements(
    product_id: UUID, _: Admin, upstream: Upstream, limit: Limit = 50, cursor: Cursor = None
) -> Response:
    """The product's stock ledger (admin), from inventory_svc."""
    return await upstream.relay(
        "inventory", f"/products/{product_id}/movements", {"limit": limit, "cursor": cursor}
    )
