resource "aiven_pg" "pg" {
  project                = var.aiven_project_name
  cloud_name             = var.cloud_name
  plan                   = var.postgres_plan
  service_name           = "${var.name_prefix}-pg"
  termination_protection = var.termination_protection

  pg_user_config {
    pg_version = var.postgres_version
  }
}

resource "aiven_pg_database" "clickstream" {
  project       = var.aiven_project_name
  service_name  = aiven_pg.pg.service_name
  database_name = local.database_name
}

# The aggregator connects as this user, never as avnadmin.
resource "aiven_pg_user" "aggregator" {
  project      = var.aiven_project_name
  service_name = aiven_pg.pg.service_name
  username     = "${replace(var.name_prefix, "-", "_")}_aggregator"
}

# PostgreSQL 15+ no longer lets every role create objects in `public`; the
# aggregator applies its own migrations, so it needs CREATE there (and nothing
# outside this database).
resource "postgresql_grant" "aggregator_schema" {
  database    = aiven_pg_database.clickstream.database_name
  role        = aiven_pg_user.aggregator.username
  schema      = "public"
  object_type = "schema"
  privileges  = ["CREATE", "USAGE"]
}
