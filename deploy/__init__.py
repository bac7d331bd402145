"""Deployment: the nginx configuration, the local cluster (`make cluster`), the health check."""
