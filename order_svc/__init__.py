"""order_svc: orders, their items and status history; emits orders.events."""
