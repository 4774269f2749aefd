"""`terraform fmt -check` and `terraform validate` on terraform/, with no registry.

:mod:`.binary` finds or builds the terraform CLI, :mod:`.check` runs the two checks
on a copy of terraform/ against providers from a local filesystem mirror.
"""
