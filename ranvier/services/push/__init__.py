"""Push: push rules, the notify/highlight actions of events with unread counts, and pushers."""
