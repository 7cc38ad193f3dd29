"""Maintenance windows: planned work that should page nobody."""
