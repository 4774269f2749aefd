"""clickstream-check: connectivity and health of every service the pipeline uses."""
