"""What runs beside PlexSync's worker: the outage tracker, and the daemon that drives it."""
