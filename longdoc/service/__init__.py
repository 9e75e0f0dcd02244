"""The HTTP service: `longdoc serve` (FastAPI; install the `serve` extra)."""
