"""Serving rewards out of process: a Ray actor wrapper and an HTTP client/server pair (JSON + base64 PNG)."""
