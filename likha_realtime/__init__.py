"""What flows: sockets, protocol handlers, collections, events and fan-out for Django ERPs."""
