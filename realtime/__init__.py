"""Realtime: the WebSocket protocol, auth, fan-out and consumers."""
