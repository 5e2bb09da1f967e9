"""Durable store of behaviour events and the item catalog for the serving layer (SQLite embedded, or PostgreSQL)."""
