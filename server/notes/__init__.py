"""Shared notes: one text per consult, written live by its participants (OT, Jupiter model)."""
