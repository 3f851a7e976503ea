"""The process: server, drain, reload, workers, demo."""
