"""product_svc: the catalog (categories, products, images) and the authoritative stock."""
