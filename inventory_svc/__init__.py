"""inventory_svc: the ledger of every stock change, built from inventory.events."""
