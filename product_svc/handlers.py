"""product_svc's message entry points: which message goes to which use case."""

from functools import partial

from common.handlers import Handlers, SetBased
from common.unit_of_work import SessionMaker
from product_svc import services
from schemas.orders import OrderCancelled, OrderPlaced
from schemas.products import (
    AddProductImage,
    CreateCategory,
    CreateProduct,
    RestockProduct,
    UpdateProduct,
)
from schemas.topics import CONSUMED_TOPICS

TOPICS = CONSUMED_TOPICS["product_svc"]
APPLIED_AT_ONCE = (CreateCategory, CreateProduct, UpdateProduct, AddProductImage, RestockProduct)
"""The commands the gateway also sends over HTTP (``common.commands``), to answer with their
result."""


def handlers(sessionmaker: SessionMaker) -> Handlers:
    return {
        CreateCategory: partial(services.create_category, sessionmaker),
        CreateProduct: partial(services.create_product, sessionmaker),
        UpdateProduct: partial(services.update_product, sessionmaker),
        AddProductImage: partial(services.add_product_image, sessionmaker),
        RestockProduct: partial(services.restock_product, sessionmaker),
        OrderPlaced: SetBased(partial(services.reserve_stock, sessionmaker)),
        OrderCancelled: SetBased(partial(services.release_stock, sessionmaker)),
    }
