"""``clickstream-verify``: recompute the session metrics from the topic and diff them."""
