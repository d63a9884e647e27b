"""The budget service: every cent of model spend is reserved before it is spent, per tenant ledger in KV."""
