"""Certificate file checks: the design document's `ls -la` / `chmod 600 *.key` step."""

from __future__ import annotations

from pathlib import Path

import pytest

from clickstream_ops.check.files import CertFile, check_files, problem
from clickstream_ops.check.results import ServiceChecks, Verdict

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def write(path: Path, content: bytes, mode: int) -> Path:
    path.write_bytes(content)
    path.chmod(mode)
    return path


def checks() -> ServiceChecks:
    return ServiceChecks("kafka", ("certificates", "dns"))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_key_readable_by_group_or_others_fails_with_chmod_600(tmp_path: Path, mode: int) -> None:
    key = write(tmp_path / "service.key", KEY, mode)
    found = problem(CertFile("KAFKA_SSL_KEYFILE", key, is_key=True))
    assert found is not None
    detail, fix = found
    assert "readable by group or others" in detail
    assert fix == f"chmod 600 {key}"


def test_private_key_and_world_readable_certificates_pass(tmp_path: Path) -> None:
    files = [
        CertFile("KAFKA_SSL_CAFILE", write(tmp_path / "ca.pem", PEM, 0o644)),
        CertFile("KAFKA_SSL_CERTFILE", write(tmp_path / "service.cert", PEM, 0o644)),
        CertFile("KAFKA_SSL_KEYFILE", write(tmp_path / "service.key", KEY, 0o600), is_key=True),
    ]
    result = checks()
    check_files(result, files)
    [certificates, dns] = result.results()
    assert certificates.verdict is Verdict.OK
    assert "KAFKA_SSL_KEYFILE=" in certificates.detail
    assert dns.verdict is Verdict.SKIP


def test_missing_directory_and_non_pem_files(tmp_path: Path) -> None:
    missing = problem(CertFile("KAFKA_SSL_CAFILE", tmp_path / "nope.pem"))
    assert missing is not None
    assert missing[0].endswith("no such file")
    assert "KAFKA_SSL_CAFILE" in missing[1]

    folder = problem(CertFile("KAFKA_SSL_CAFILE", tmp_path))
    assert folder is not None
    assert "not a regular file" in folder[0]

    der = problem(CertFile("KAFKA_SSL_CAFILE", write(tmp_path / "ca.der", b"\x30\x82", 0o644)))
    assert der is not None
    assert "not a PEM file" in der[0]


def test_the_first_bad_file_fails_the_step_and_blocks_the_rest(tmp_path: Path) -> None:
    result = checks()
    check_files(result, [CertFile("KAFKA_SSL_CAFILE", tmp_path / "nope.pem")])
    [certificates, dns] = result.results()
    assert certificates.verdict is Verdict.FAIL
    assert result.blocked
    assert dns.detail == "not checked: certificates failed"


def test_no_files_is_a_skip() -> None:
    result = checks()
    check_files(result, [])
    assert result.results()[0].verdict is Verdict.SKIP
    assert not result.blocked
