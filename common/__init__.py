"""The plumbing every service shares, written once: settings, the runtime, the database and its
statements, the unit of work, the producer, the consumer and its pacing, outbox, inbox, dead
letters, HTTP, metrics, tracing and logs (docs/architecture.md lists each module). Never
imports a service."""
