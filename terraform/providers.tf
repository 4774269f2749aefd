provider "aiven" {
  api_token = var.aiven_api_token
}

# Connects (TLS) as the service's admin user only to grant the application user
# what PostgreSQL 15+ no longer grants by default; the services never use it.
provider "postgresql" {
  host            = aiven_pg.pg.service_host
  port            = aiven_pg.pg.service_port
  username        = aiven_pg.pg.service_username
  password        = aiven_pg.pg.service_password
  database        = aiven_pg_database.clickstream.database_name
  sslmode         = "require"
  superuser       = false
  connect_timeout = 15
}
