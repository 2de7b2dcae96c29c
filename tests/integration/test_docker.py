"""The Docker lab from the host: docker/compose.yaml validates and the image runs rawtcp.

Quick checks only; the demo, labs and the `tests` service run from scripts/ci-docker.sh. Skipped, saying
why, when no Docker engine (or compose, or the image) is there; RAWTCP_REQUIRE_DOCKER=1 (CI) turns each
skip into a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker" / "compose.yaml"
IMAGE = os.environ.get("RAWTCP_IMAGE", "rawtcp:local")


def _unavailable(reason: str) -> None:
    if os.environ.get("RAWTCP_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{reason} (RAWTCP_REQUIRE_DOCKER=1)", pytrace=False)
    pytest.skip(f"{reason}; set RAWTCP_REQUIRE_DOCKER=1 to fail instead")


def _run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def compose() -> list[str]:
    """The compose command: Debian's docker-compose 1.29, else the `docker compose` plugin."""
    if shutil.which("docker-compose"):
        return ["docker-compose", "-f", str(COMPOSE_FILE)]
    if shutil.which("docker") and _run(["docker", "compose", "version"]).returncode == 0:
        return ["docker", "compose", "-f", str(COMPOSE_FILE)]
    _unavailable("neither docker-compose nor `docker compose` is installed (apt-get install docker-compose)")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def engine() -> None:
    if shutil.which("docker") is None:
        _unavailable("no docker command (apt-get install docker.io)")
    info = _run(["docker", "info"], timeout=30)
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["?"])[-1]
        _unavailable(f"no Docker engine reachable (`docker info` failed: {last})")


@pytest.fixture(scope="module")
def image(engine: None) -> str:
    if _run(["docker", "image", "inspect", IMAGE]).returncode != 0:
        _unavailable(f"image {IMAGE} not built (scripts/docker-lab.sh build)")
    return IMAGE


def test_compose_file_validates(compose: list[str]) -> None:
    result = _run([*compose, "config", "-q"])
    assert result.returncode == 0, result.stderr


def test_compose_services_and_internal_network(compose: list[str]) -> None:
    services = _run([*compose, "--profile", "capture", "--profile", "tests", "config", "--services"])
    assert services.returncode == 0, services.stderr
    assert set(services.stdout.split()) == {"listener", "rawtcp", "tests", "capture"}
    config = _run([*compose, "config"])
    assert config.returncode == 0, config.stderr
    # The lab must have no route out, and keep to the benchmarking range (RFC 2544).
    assert "internal: true" in config.stdout
    assert "subnet: 198.18.10.0/24" in config.stdout
    assert "privileged" not in config.stdout


def test_image_runs_rawtcp_help(image: str) -> None:
    result = _run(["docker", "run", "--rm", "--network", "none", image, "--help"])
    assert result.returncode == 0, result.stderr
    assert "Usage: rawtcp" in result.stdout


def test_image_has_the_lab_tools(image: str) -> None:
    tools = ["ip", "nft", "ethtool", "tcpdump", "ss", "python"]
    script = "for t in " + " ".join(tools) + ' ; do command -v "$t" >/dev/null || echo "missing $t"; done'
    result = _run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", script])
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_listener_sysctls_match_the_script_runner(compose: list[str]) -> None:
    # `rawtcp run --lab docker` must see the kernel settings `rawtcp run` gives its own namespaces.
    from rawtcp.script.target import DEFAULT_SYSCTLS

    config = _run([*compose, "config"])
    assert config.returncode == 0, config.stderr
    found = dict(re.findall(r"^\s+(net\.ipv4\.tcp_\w+): '?([^'\n]*)'?$", config.stdout, flags=re.MULTILINE))
    # Refused outside the initial namespace unless the host allows the algorithm (see compose.yaml).
    expected = {k: v for k, v in DEFAULT_SYSCTLS.items() if k != "net.ipv4.tcp_congestion_control"}
    assert found == expected
