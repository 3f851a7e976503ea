"""Observation: metrics (declared and written here), the request record, the access log."""
