resource "aiven_opensearch" "os" {
  project                = var.aiven_project_name
  cloud_name             = var.cloud_name
  plan                   = var.opensearch_plan
  service_name           = "${var.name_prefix}-opensearch"
  termination_protection = var.termination_protection

  opensearch_user_config {
    opensearch_version = var.opensearch_version

    opensearch_dashboards {
      enabled = true
    }
  }
}

locals {
  # The REST endpoint without credentials; they travel separately (connector
  # settings, OPENSEARCH_USER/PASSWORD) so that no URL in .env or logs holds them.
  opensearch_uri = "https://${aiven_opensearch.os.service_host}:${aiven_opensearch.os.service_port}"

  # Aiven returns the Dashboards URI with the admin credentials embedded; strip
  # them so the URL can be shown and opened in a browser (which asks for them).
  opensearch_dashboard_url = replace(aiven_opensearch.os.opensearch[0].opensearch_dashboards_uri, "/://[^@/]+@/", "://")
}
