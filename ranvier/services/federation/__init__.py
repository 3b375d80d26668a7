"""Inbound federation and what serves it: keys of other servers, queries, (later) PDUs and EDUs."""
