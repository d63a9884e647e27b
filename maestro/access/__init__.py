"""Who may do what: the API's bearer tokens and NATS's accounts and permissions."""
