"""Developer tooling: the benchmark, the demo, and the loopback Plex and Stash they run against.

Nothing the plugin runs in production imports this package at module level (a test walks the
imports); the command line loads ``bench`` and ``demo`` from here only when they are asked
for, and the test kit (:mod:`..testing`) only when a fixture needs a server.
"""
