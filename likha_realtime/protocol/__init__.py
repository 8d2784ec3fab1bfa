"""Pure protocol pieces of the realtime sockets: decoding, message shapes, heartbeat state."""
