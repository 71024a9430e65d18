"""Serving a policy over HTTP with BentoML (`POST /act`).

Not built yet: its own issue fills this package. `rlship.load_policy` and `Policy.act` are what it will call.
"""
