"""notification_svc: notifications to users, and its own copy of their contact data."""
