"""Prometheus metrics, under Synapse's names where the concept is the same so that
Synapse's Grafana dashboard and alert rules carry over (docs/metrics.md).

This package sits below every other layer (it imports nothing of Ranvier's): storage,
services and the HTTP plumbing record into it. Cheap when on, free when off: nothing is
recorded, and no instrumented object is built, unless `registry.enable()` ran at start-up
(`enable_metrics: true`); hot paths pay a dict lookup and an increment, and anything that
can be read off existing state (cache sizes, queue lengths, waiting long-polls) is read at
scrape time instead of being counted as it changes.
"""
