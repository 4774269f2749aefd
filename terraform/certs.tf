data "aiven_project" "this" {
  project = var.aiven_project_name
}

# The project CA signs both the Kafka and the PostgreSQL server certificates, so
# one ca.pem serves KAFKA_SSL_CAFILE and POSTGRES_SSLROOTCERT. Files are 0600 in
# a 0700 directory; certs/ is git-ignored.
resource "local_sensitive_file" "ca" {
  content              = data.aiven_project.this.ca_cert
  filename             = "${path.module}/../${local.ca_file}"
  file_permission      = "0600"
  directory_permission = "0700"
}

resource "local_sensitive_file" "client_cert" {
  content              = aiven_kafka_user.app.access_cert
  filename             = "${path.module}/../${local.cert_file}"
  file_permission      = "0600"
  directory_permission = "0700"
}

resource "local_sensitive_file" "client_key" {
  content              = aiven_kafka_user.app.access_key
  filename             = "${path.module}/../${local.key_file}"
  file_permission      = "0600"
  directory_permission = "0700"
}
