"""The long-running service: daemon loop and state, metrics, control socket, journal."""
