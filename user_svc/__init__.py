"""user_svc: users, their addresses and roles; emits users.events."""
