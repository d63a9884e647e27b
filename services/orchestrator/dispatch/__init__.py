"""Fair dispatch: which waiting task of a role goes to its agents next."""
