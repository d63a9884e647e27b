"""The operator console: a small web page under /ui/ that calls the HTTP API with the user's token."""
