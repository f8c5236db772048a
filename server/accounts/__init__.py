"""Accounts: regions, organisations, specialties, users, sessions and login."""
