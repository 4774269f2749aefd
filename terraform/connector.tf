locals {
  # Aiven's OpenSearch sink, the release docker/connect/Dockerfile installs for the
  # local stack (OPENSEARCH_CONNECTOR_VERSION): 3.x creates a missing daily index
  # without mappings, so the index template (dynamic: strict) applies. 4.x sends
  # `dynamic: true` with the create request, which wins over the template; moving to
  # it needs the strict mapping kept another way first (the contract test says so).
  opensearch_connector_version = "3.1.1"

  # connect/opensearch-sink.json holds every setting that is not a secret or an
  # address; the local Compose stack registers the very same file. file() (not
  # templatefile()) keeps TimestampRouter's literal ${timestamp} away from
  # Terraform's interpolation: an HCL literal would need to be written $${timestamp}.
  connector_settings = jsondecode(file("${path.module}/../connect/opensearch-sink.json"))

  connector_connection = {
    "connection.url"      = local.opensearch_uri
    "connection.username" = aiven_opensearch.os.service_username
    "connection.password" = aiven_opensearch.os.service_password
    # The topic exists already (kafka.tf); this only matters if it is ever deleted.
    "errors.deadletterqueue.topic.replication.factor" = tostring(var.kafka_topic_replication)
  }
}

resource "aiven_kafka_connector" "opensearch_sink" {
  project        = var.aiven_project_name
  service_name   = aiven_kafka_connect.connect.service_name
  connector_name = local.connector_settings["name"]
  config         = merge(local.connector_settings, local.connector_connection)

  # Connect must reach Kafka (integration) and find both topics before it starts.
  depends_on = [
    aiven_service_integration.kafka_to_connect,
    aiven_kafka_topic.topic,
  ]
}
