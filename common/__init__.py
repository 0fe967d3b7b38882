"""The plumbing every service shares, written once: settings, database, outbox, inbox, broker,
logging and the app factory. Never imports a service."""
