# `make env` (clickstream-env) turns `terraform output -json` into .env; the
# names below are what it reads. Names the design document used are kept.

# --- Kafka -----------------------------------------------------------------
output "kafka_service_uri" {
  description = "Bootstrap servers for the clients, host:port (no scheme): KAFKA_BOOTSTRAP_SERVERS."
  value       = "${aiven_kafka.kafka.service_host}:${aiven_kafka.kafka.service_port}"
}

output "kafka_topic" {
  description = "The events topic: KAFKA_TOPIC."
  value       = aiven_kafka_topic.topic["events"].topic_name
}

output "kafka_dlq_topic" {
  description = "The aggregator's dead-letter topic: KAFKA_DLQ_TOPIC."
  value       = aiven_kafka_topic.topic["dlq"].topic_name
}

output "kafka_connect_dlq_topic" {
  description = "The OpenSearch sink's dead-letter topic."
  value       = aiven_kafka_topic.topic["connect_dlq"].topic_name
}

output "kafka_topic_partitions" {
  description = "Partitions of the events topic: the most aggregator replicas that get work."
  value       = var.kafka_topic_partitions
}

output "kafka_group_id" {
  description = "The aggregator's consumer group, the only one the service user may join: KAFKA_GROUP_ID."
  value       = local.consumer_group
}

output "kafka_username" {
  description = "Kafka service user of the producer and the aggregator (client-certificate authentication)."
  value       = aiven_kafka_user.app.username
}

output "kafka_ca_file" {
  description = "Project CA certificate, relative to the repository root: KAFKA_SSL_CAFILE."
  value       = local.ca_file
}

output "kafka_cert_file" {
  description = "Client certificate of the service user, relative to the repository root: KAFKA_SSL_CERTFILE."
  value       = local.cert_file
}

output "kafka_key_file" {
  description = "Client private key of the service user, relative to the repository root: KAFKA_SSL_KEYFILE."
  value       = local.key_file
}

output "kafka_access_cert" {
  description = "Client certificate (PEM), also written to kafka_cert_file."
  value       = aiven_kafka_user.app.access_cert
  sensitive   = true
}

output "kafka_access_key" {
  description = "Client private key (PEM), also written to kafka_key_file."
  value       = aiven_kafka_user.app.access_key
  sensitive   = true
}

output "kafka_connect_service_name" {
  description = "Aiven service running the OpenSearch sink connector."
  value       = aiven_kafka_connect.connect.service_name
}

output "opensearch_connector_name" {
  description = "Name of the OpenSearch sink connector (see its status in the Console or with `avn service connector status`)."
  value       = aiven_kafka_connector.opensearch_sink.connector_name
}

# --- PostgreSQL --------------------------------------------------------------
output "postgres_host" {
  description = "PostgreSQL host: POSTGRES_HOST."
  value       = aiven_pg.pg.service_host
}

output "postgres_port" {
  description = "PostgreSQL port: POSTGRES_PORT."
  value       = aiven_pg.pg.service_port
}

output "postgres_database" {
  description = "The pipeline's database: POSTGRES_DATABASE."
  value       = aiven_pg_database.clickstream.database_name
}

output "postgres_user" {
  description = "The aggregator's application user (not avnadmin): POSTGRES_USER."
  value       = aiven_pg_user.aggregator.username
}

output "postgres_password" {
  description = "Password of postgres_user: POSTGRES_PASSWORD."
  value       = aiven_pg_user.aggregator.password
  sensitive   = true
}

output "postgres_sslmode" {
  description = "TLS mode the clients use; verify-full checks the server name against the project CA."
  value       = "verify-full"
}

output "postgres_ca_file" {
  description = "CA that signs the PostgreSQL server certificate, relative to the repository root: POSTGRES_SSLROOTCERT."
  value       = local.ca_file
}

output "postgres_ca_cert" {
  description = "The project CA certificate (PEM), also written to postgres_ca_file."
  value       = data.aiven_project.this.ca_cert
  sensitive   = true
}

# --- OpenSearch --------------------------------------------------------------
output "opensearch_uri" {
  description = "OpenSearch REST endpoint without credentials: OPENSEARCH_URI."
  value       = local.opensearch_uri
}

output "opensearch_user" {
  description = "OpenSearch user for the set-up command and the connector: OPENSEARCH_USER."
  value       = aiven_opensearch.os.service_username
}

output "opensearch_password" {
  description = "Password of opensearch_user: OPENSEARCH_PASSWORD."
  value       = aiven_opensearch.os.service_password
  sensitive   = true
}

output "opensearch_dashboard_url" {
  description = "OpenSearch Dashboards in the browser (log in with opensearch_user): OPENSEARCH_DASHBOARDS_URL."
  # Credentials were stripped in opensearch.tf, so the URL itself is not secret.
  value = nonsensitive(local.opensearch_dashboard_url)
}

output "opensearch_index_pattern" {
  description = "Daily indices the sink connector writes (clickstream-events-YYYY.MM.DD)."
  value       = local.index_pattern
}

output "opensearch_retention_days" {
  description = "Days the daily indices are kept: OPENSEARCH_RETENTION_DAYS."
  value       = var.opensearch_retention_days
}
