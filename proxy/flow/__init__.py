"""The flow of one request: handlers -> request -> respond -> relay -> writer."""
