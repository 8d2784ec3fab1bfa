"""What a principal may reach: the collection registry, rights, reads, items and subscriptions."""
