"""The guard offline: check-pr over a change, SARIF, and the policy, guard and dead-letter commands."""
