"""The guard service: every request is judged by policy and its cost reserved before anything runs."""
