resource "aiven_kafka" "kafka" {
  project                = var.aiven_project_name
  cloud_name             = var.cloud_name
  plan                   = var.kafka_plan
  service_name           = "${var.name_prefix}-kafka"
  termination_protection = var.termination_protection

  kafka_user_config {
    kafka_version = var.kafka_version

    kafka {
      # Topics are declared below; a typo in a client must fail, not create a topic.
      auto_create_topics_enable = false
    }
  }
}

resource "aiven_kafka_topic" "topic" {
  for_each = local.topics

  project      = var.aiven_project_name
  service_name = aiven_kafka.kafka.service_name
  topic_name   = each.value.name
  partitions   = var.kafka_topic_partitions
  replication  = var.kafka_topic_replication

  # The events topic holds the only copy of events not yet aggregated or indexed.
  # (Topic termination_protection is deprecated in provider 4.x; prevent_destroy
  # replaces it. It takes a literal only, so it cannot follow var.termination_protection.
  # Teardown: `terraform state rm aiven_kafka_topic.topic` first - the topics go
  # with the Kafka service - see README.md.)
  lifecycle {
    prevent_destroy = true
  }

  config {
    cleanup_policy = "delete"
    retention_ms   = tostring(each.value.retention * local.day_ms)
    # The sink's TimestampRouter names the daily index from the record timestamp;
    # the producer sets it to the event time, so it must stay CreateTime (not the
    # broker's append time). Retention also counts from it: a backfill of events
    # older than retention_ms is deleted before anyone reads it.
    message_timestamp_type = "CreateTime"
    min_insync_replicas    = tostring(var.kafka_topic_replication > 2 ? 2 : 1)
  }
}

# One service user for the producer and the aggregator; its client certificate is
# written to certs/ (certs.tf). Aiven's default avnadmin user is not used by services.
resource "aiven_kafka_user" "app" {
  project      = var.aiven_project_name
  service_name = aiven_kafka.kafka.service_name
  username     = "${var.name_prefix}-app"
}

# Kafka-native ACLs rather than aiven_kafka_acl: Aiven ACLs always allow every
# consumer group, and the brief is to allow only the aggregator's group.
locals {
  app_principal = "User:${aiven_kafka_user.app.username}"

  app_acls = merge(
    {
      for pair in setproduct(["events", "dlq"], ["Read", "Write", "Describe"]) :
      "topic-${pair[0]}-${lower(pair[1])}" => {
        resource_type = "Topic"
        resource_name = local.topics[pair[0]].name
        operation     = pair[1]
      }
    },
    {
      for operation in ["Read", "Describe"] :
      "group-${lower(operation)}" => {
        resource_type = "Group"
        resource_name = local.consumer_group
        operation     = operation
      }
    },
  )
}

resource "aiven_kafka_native_acl" "app" {
  for_each = local.app_acls

  project         = var.aiven_project_name
  service_name    = aiven_kafka.kafka.service_name
  principal       = local.app_principal
  host            = "*"
  resource_type   = each.value.resource_type
  resource_name   = each.value.resource_name
  pattern_type    = "LITERAL"
  operation       = each.value.operation
  permission_type = "ALLOW"
}

# A separate Connect service keeps the Kafka plan free to be small (Connect on the
# Kafka service itself needs a business plan) and lets Connect scale on its own.
resource "aiven_kafka_connect" "connect" {
  project                = var.aiven_project_name
  cloud_name             = var.cloud_name
  plan                   = var.kafka_connect_plan
  service_name           = "${var.name_prefix}-connect"
  termination_protection = var.termination_protection

  kafka_connect_user_config {
    kafka_connect {
      consumer_isolation_level = "read_committed"
    }

    # Pinned, not "latest": 4.0 renamed the connector class and creates each index
    # with `dynamic: true`, which overrides the template's strict mapping (see
    # connector.tf and tests/contract/test_terraform.py).
    plugin_versions {
      plugin_name = var.opensearch_connector_plugin
      version     = local.opensearch_connector_version
    }
  }
}

resource "aiven_service_integration" "kafka_to_connect" {
  project                  = var.aiven_project_name
  integration_type         = "kafka_connect"
  source_service_name      = aiven_kafka.kafka.service_name
  destination_service_name = aiven_kafka_connect.connect.service_name
}
