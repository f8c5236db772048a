"""Calls: the call page and the pre-call check page (media and signaling live in the browser)."""
