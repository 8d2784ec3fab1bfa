"""Change events: capture after commit, publication across processes, delivery to subscribers."""
