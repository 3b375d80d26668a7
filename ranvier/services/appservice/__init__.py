"""Application services (bridges and bots): who they are, what they may do as whom, and
what the homeserver sends them (spec: application-service-api)."""
