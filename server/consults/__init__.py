"""Consults: the request, its lifecycle, messages, attachments, reports and export."""
