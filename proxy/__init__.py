"""railproxy's HTTP service: an OpenAI-compatible streaming guardrails reverse proxy."""

__version__ = "0.1.0"
