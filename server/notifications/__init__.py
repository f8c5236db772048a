"""Notifications: a durable outbox per user, pushed live by signaling, polled otherwise."""
