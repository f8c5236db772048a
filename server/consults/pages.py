"""Consult pages (plain HTML forms; the web client polishes them later)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
