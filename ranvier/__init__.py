"""Ranvier, a Matrix homeserver."""

__version__ = "0.1.0"
