"""The floor beneath the apps: group names, the one publish path, and the fan-out layer's interface.

collaboration, agents and metrics publish through here and know nothing of realtime (the sockets),
which subscribes to the same groups (docs/architecture.md).
"""
