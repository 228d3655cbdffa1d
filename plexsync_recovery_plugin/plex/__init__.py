"""Talking to Plex: the error taxonomy PlexSync uses and the health probe."""
