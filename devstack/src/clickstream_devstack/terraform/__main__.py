"""``python -m clickstream_devstack.terraform`` (``make terraform``): fmt and validate.

Exit 0 when both ran clean (no error, no warning), 1 when either found something,
2 when a check could not run (no terraform and no Go to build it, or a provider
missing from the mirror).
"""

from __future__ import annotations

import sys

from clickstream_devstack.terraform.binary import TerraformUnavailableError, find_terraform
from clickstream_devstack.terraform.check import (
    ProvidersUnavailableError,
    mirror_dir,
    terraform_version,
    unformatted,
    validate,
)


def main() -> None:
    try:
        terraform = find_terraform()
    except TerraformUnavailableError as error:
        print(f"fmt and validate: NOT RUN: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"terraform {terraform_version(terraform)} ({terraform})")
    diff = unformatted(terraform)
    print("fmt -check: " + ("ok" if not diff else f"NOT FORMATTED\n{diff}"))
    try:
        validation = validate(terraform)
    except ProvidersUnavailableError as error:
        print(f"validate: NOT RUN: {error}", file=sys.stderr)
        sys.exit(2)
    for address, version in sorted(validation.providers.items()):
        print(f"provider {address} {version} (from {mirror_dir()})")
    for diagnostic in validation.diagnostics:
        print(diagnostic)
    print("validate: " + ("ok" if not validation.diagnostics else "PROBLEMS (above)"))
    sys.exit(1 if diff or validation.diagnostics else 0)


if __name__ == "__main__":
    main()
