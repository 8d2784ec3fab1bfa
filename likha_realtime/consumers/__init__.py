"""Thin channels consumers: accept/deny, decode, dispatch."""
