"""Media endpoints: the content repository's client API (authenticated and legacy)."""
