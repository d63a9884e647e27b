"""Pull request reviews: a webhook's pull request becomes a review workflow, and its outcome commit statuses
(and check-pr's SARIF) on GitHub."""
