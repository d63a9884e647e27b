"""GitHub as a source of work: the webhook's configuration and signature, its REST API, and the review
workflow a pull request's head commit gets."""
