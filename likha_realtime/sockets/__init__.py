"""The three sockets: a shared lifecycle (sockets.base) and the REST, logs and GraphQL consumers."""
