"""clickstream-report: session analytics from PostgreSQL as tables or JSON."""
