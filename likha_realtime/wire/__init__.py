"""The wire layer of the realtime sockets: their errors beyond auth, the JSON codec, heartbeat state."""
