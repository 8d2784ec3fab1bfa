"""GraphQL over HTTP and graphql-ws, generated from the collection registry (PROTOCOL §8)."""
