"""Reliability reports: how each integration and system fared over a period."""
