"""HTTP routes of likha_realtime: /items, /server/info and POST /graphql."""
