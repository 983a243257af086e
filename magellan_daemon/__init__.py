"""Magellan trading daemon."""
