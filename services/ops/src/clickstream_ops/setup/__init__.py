"""``clickstream-setup``: create what the pipeline needs before it runs (topics, indices)."""
