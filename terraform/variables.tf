variable "aiven_api_token" {
  description = "Aiven API token (Console > User profile > Tokens). Never commit it: use terraform.tfvars (git-ignored) or TF_VAR_aiven_api_token."
  type        = string
  sensitive   = true

  validation {
    condition     = length(trimspace(var.aiven_api_token)) > 0
    error_message = "aiven_api_token must not be empty."
  }
}

variable "aiven_project_name" {
  description = "Existing Aiven project that will hold the services."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,62}$", var.aiven_project_name))
    error_message = "aiven_project_name must be lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "cloud_name" {
  description = "Cloud and region for every service, e.g. google-europe-west1 or aws-eu-central-1."
  type        = string
  default     = "google-europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z0-9-]+$", var.cloud_name))
    error_message = "cloud_name must look like provider-region, e.g. google-europe-west1."
  }
}

variable "name_prefix" {
  description = "Prefix of the service names (clickstream-kafka, clickstream-pg, ...), unique within the project."
  type        = string
  default     = "clickstream"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,39}$", var.name_prefix))
    error_message = "name_prefix must be 1-40 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "kafka_plan" {
  description = "Aiven for Apache Kafka plan (startup-2 has three brokers, enough for replication 2)."
  type        = string
  default     = "startup-2"

  validation {
    condition     = can(regex("^(hobbyist|startup|business|premium)-[0-9]+[a-z0-9-]*$", var.kafka_plan))
    error_message = "kafka_plan must be an Aiven plan name such as startup-2 or business-4."
  }
}

variable "kafka_version" {
  description = "Apache Kafka major version of the managed service."
  type        = string
  default     = "3.9"

  validation {
    condition     = can(regex("^[34]\\.[0-9]+$", var.kafka_version))
    error_message = "kafka_version must be a major.minor version such as 3.9."
  }
}

variable "kafka_connect_plan" {
  description = "Plan of the dedicated Aiven for Apache Kafka Connect service that runs the OpenSearch sink."
  type        = string
  default     = "startup-4"

  validation {
    condition     = can(regex("^(startup|business|premium)-[0-9]+[a-z0-9-]*$", var.kafka_connect_plan))
    error_message = "kafka_connect_plan must be an Aiven plan name such as startup-4."
  }
}

variable "kafka_topic_partitions" {
  description = "Partitions of the events topic: the upper bound on aggregator replicas that share the work."
  type        = number
  default     = 6

  validation {
    condition     = var.kafka_topic_partitions >= 1 && var.kafka_topic_partitions <= 1000 && floor(var.kafka_topic_partitions) == var.kafka_topic_partitions
    error_message = "kafka_topic_partitions must be a whole number between 1 and 1000."
  }
}

variable "kafka_topic_replication" {
  description = "Replication factor of every topic (Aiven requires at least 2; at most the broker count)."
  type        = number
  default     = 2

  validation {
    condition     = var.kafka_topic_replication >= 2 && var.kafka_topic_replication <= 9 && floor(var.kafka_topic_replication) == var.kafka_topic_replication
    error_message = "kafka_topic_replication must be a whole number between 2 and 9."
  }
}

variable "kafka_retention_days" {
  description = "How long the events topic keeps messages, in days."
  type        = number
  default     = 7

  validation {
    condition     = var.kafka_retention_days >= 1 && var.kafka_retention_days <= 365
    error_message = "kafka_retention_days must be between 1 and 365."
  }
}

variable "kafka_dlq_retention_days" {
  description = "How long the two dead-letter topics keep messages, in days (longer than the events topic, to leave time for a replay)."
  type        = number
  default     = 14

  validation {
    condition     = var.kafka_dlq_retention_days >= 1 && var.kafka_dlq_retention_days <= 365
    error_message = "kafka_dlq_retention_days must be between 1 and 365."
  }
}

variable "postgres_plan" {
  description = "Aiven for PostgreSQL plan."
  type        = string
  default     = "startup-4"

  validation {
    condition     = can(regex("^(hobbyist|free|startup|business|premium)-[0-9]+[a-z0-9-]*$", var.postgres_plan))
    error_message = "postgres_plan must be an Aiven plan name such as startup-4."
  }
}

variable "postgres_version" {
  description = "PostgreSQL major version."
  type        = string
  default     = "16"

  validation {
    condition     = contains(["14", "15", "16", "17"], var.postgres_version)
    error_message = "postgres_version must be one of 14, 15, 16, 17."
  }
}

variable "opensearch_plan" {
  description = "Aiven for OpenSearch plan."
  type        = string
  default     = "startup-4"

  validation {
    condition     = can(regex("^(hobbyist|startup|business|premium)-[0-9]+[a-z0-9-]*$", var.opensearch_plan))
    error_message = "opensearch_plan must be an Aiven plan name such as startup-4."
  }
}

variable "opensearch_version" {
  description = "OpenSearch version of the managed service: one of the values the Aiven provider accepts (1, 2, 2.19, 3.3, 3.6). The test bench runs 2.19."
  type        = string
  default     = "2.19"

  validation {
    # The provider's enum for opensearch_user_config.opensearch_version (4.60+).
    condition     = contains(["1", "2", "2.19", "3.3", "3.6"], var.opensearch_version)
    error_message = "opensearch_version must be one of 1, 2, 2.19, 3.3, 3.6."
  }
}

variable "opensearch_retention_days" {
  description = "Days the daily clickstream-events-* indices are kept (clickstream-setup opensearch turns it into an ISM policy)."
  type        = number
  default     = 30

  validation {
    condition     = var.opensearch_retention_days >= 1 && var.opensearch_retention_days <= 3650
    error_message = "opensearch_retention_days must be between 1 and 3650."
  }
}

variable "certs_dir" {
  description = "Where the CA, client certificate and key are written, relative to the repository root (.env refers to them by this path)."
  type        = string
  default     = "certs"

  validation {
    condition     = !startswith(var.certs_dir, "/") && !strcontains(var.certs_dir, "..")
    error_message = "certs_dir must be a relative path inside the repository."
  }
}

variable "termination_protection" {
  description = "Protect the services (Kafka, Connect, PostgreSQL, OpenSearch) from `terraform destroy`; turn on for anything beyond a demo. Topics are protected by lifecycle.prevent_destroy in kafka.tf instead."
  type        = bool
  default     = false
}

variable "opensearch_connector_plugin" {
  description = "Name of Aiven's OpenSearch sink plugin in the Connect service's plugin list (check with `avn service connector available <connect service>`); its version is pinned in connector.tf."
  type        = string
  default     = "opensearch-connector-for-apache-kafka"

  validation {
    condition     = length(trimspace(var.opensearch_connector_plugin)) > 0
    error_message = "opensearch_connector_plugin must not be empty."
  }
}
