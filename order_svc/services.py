"""order_svc's use cases; each is one transaction (inbox check, change, outbox rows)."""

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert

from common.db import SessionMaker
from common.inbox import first_delivery
from order_svc.models import Inbox, ProductPrice
from schemas.envelope import Envelope
from schemas.products import ProductCreated, ProductUpdated


async def remember_price(
    sessionmaker: SessionMaker, envelope: Envelope, event: ProductCreated | ProductUpdated
) -> None:
    async with sessionmaker.begin() as session:
        if not await first_delivery(session, Inbox, envelope.id, envelope.type):
            return
        upsert = insert(ProductPrice).values(
            product_id=event.product_id, name=event.name, price=event.price
        )
        await session.execute(
            upsert.on_conflict_do_update(
                index_elements=[ProductPrice.product_id],
                # ON CONFLICT DO UPDATE skips the column's onupdate, so set it here.
                set_={"name": event.name, "price": event.price, "updated_at": func.now()},
            )
        )
