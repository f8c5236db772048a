"""Signaling: the WebSocket service that relays WebRTC negotiation, notes and notifications."""
