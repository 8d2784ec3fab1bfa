"""The admin log stream (PROTOCOL §7): a logging handler, redaction, and the per-process delivery to sockets."""
