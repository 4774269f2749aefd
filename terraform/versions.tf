# Pinned so that a fresh `terraform init` resolves the same providers everywhere;
# .terraform.lock.hcl (committed after the first init) then pins the exact builds.
terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    aiven = {
      source  = "aiven/aiven"
      version = "~> 4.45" # 4.45.0 or a later 4.x; 5.x renames resources.
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
