"""Dari server: the FastAPI application, one package per domain."""
