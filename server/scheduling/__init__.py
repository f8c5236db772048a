"""Rosters, slot search, booking, on-call rings and calendar feeds."""
