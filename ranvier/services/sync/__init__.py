"""The /sync service: what changed for one user's device between two sync tokens."""
