"""A stand-in for pip's ``install --target DIR SPEC...``, offline: links what the test's Python has installed."""
