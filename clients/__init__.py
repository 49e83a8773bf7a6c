"""Clients of rtserver: a Python client (tests, benches, scripts) and the browser client."""
