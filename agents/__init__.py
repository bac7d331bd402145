"""AI agent runs: their state, progress and the `/ws/agent-status/` stream."""
