"""Run-time pieces every clickstream service shares: settings, TLS, logging, entrypoint."""
