"""Talking to Stash: does a scene still exist, and a client that survives Stash being down."""
