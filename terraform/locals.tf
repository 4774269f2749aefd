locals {
  # The names every component agrees on; shared/src/clickstream_schema/topics.py is
  # the source of truth and tests/contract/test_terraform.py keeps these equal to it.
  events_topic      = "clickstream-events"
  dlq_topic         = "clickstream-events-dlq"
  connect_dlq_topic = "clickstream-events-connect-dlq"
  consumer_group    = "clickstream-aggregator"
  index_pattern     = "clickstream-events-*"
  database_name     = "clickstream"

  day_ms = 24 * 60 * 60 * 1000

  topics = {
    events = {
      name      = local.events_topic
      retention = var.kafka_retention_days
    }
    dlq = {
      name      = local.dlq_topic
      retention = var.kafka_dlq_retention_days
    }
    connect_dlq = {
      name      = local.connect_dlq_topic
      retention = var.kafka_dlq_retention_days
    }
  }

  # Paths relative to the repository root, as .env and the Compose mounts use them.
  ca_file   = "${var.certs_dir}/ca.pem"
  cert_file = "${var.certs_dir}/service.cert"
  key_file  = "${var.certs_dir}/service.key"
}
