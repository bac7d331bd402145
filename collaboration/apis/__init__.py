"""REST endpoints for collaboration, one module per aggregate; the sockets' services and rules."""
