# Pinned so that a fresh `terraform init` resolves the same providers everywhere;
# .terraform.lock.hcl (committed after the first init) then pins the exact builds.
terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    aiven = {
      # 4.60 is the first release whose opensearch_version enum holds every value
      # variables.tf accepts (3.6 came in 4.60); later 4.x releases are accepted.
      # The provider itself does not check the value (the enum is in its description
      # only), so neither does terraform validate.
      source  = "aiven/aiven"
      version = "~> 4.60"
    }
    local = {
      source  = "hashicorp/local"
      version = "~> 2.5"
    }
    # Only for the one GRANT Aiven's API cannot express (see postgres.tf).
    postgresql = {
      source  = "cyrilgdn/postgresql"
      version = "~> 1.25"
    }
  }
}
