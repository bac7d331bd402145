"""Metrics: every instrument declared once, in instruments.py."""
