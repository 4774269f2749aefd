"""The servers the dev stack runs as child processes: Tansu, PostgreSQL and the JVM servers."""
