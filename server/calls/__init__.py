"""Calls: join tokens, guest invitations, ICE servers, call sessions; signaling's gatekeeper."""
