"""The Kafka broker's jars: resolved from Maven Central with the machine's ``mvn``, cached outside the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

__all__ = ["KAFKA_VERSION", "cache_dir", "kafka_classpath"]

KAFKA_VERSION = "4.3.0"


def cache_dir() -> Path:
    base = os.environ.get("NEOTOOL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "neotool-common"
    )
    return Path(base)


def kafka_classpath(version: str = KAFKA_VERSION) -> str:
    """The broker's classpath, resolved once with ``mvn`` and cached outside the repository."""
    target = cache_dir() / f"kafka-{version}"
    cp_file = target / "classpath.txt"
    cached = _cached_classpath(cp_file)
    if cached is not None:
        return cached
    _resolve_with_maven(target, version, cp_file)
    return cp_file.read_text().strip()


def _cached_classpath(cp_file: Path) -> str | None:
    """The cached classpath, unless some jar of it has gone (a cleaned Maven repository)."""
    if cp_file.exists():
        classpath = cp_file.read_text().strip()
        if classpath and all(Path(jar).exists() for jar in classpath.split(os.pathsep)):
            return classpath
    return None


def _resolve_with_maven(target: Path, version: str, cp_file: Path) -> None:
    if shutil.which("mvn") is None:
        raise RuntimeError(
            "Maven (mvn) is needed to fetch the Kafka broker jars; install it or set NEOTOOL_TEST_KAFKA_BROKERS"
        )
    target.mkdir(parents=True, exist_ok=True)
    pom = target / "pom.xml"
    pom.write_bytes(resources.files("neotool_common.testing.broker").joinpath("pom.xml").read_bytes())
    partial = target / "classpath.txt.partial"  # renamed when complete, so an interrupted run caches nothing
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(pom),
            f"-Dkafka.version={version}",
            "dependency:build-classpath",
            f"-Dmdep.outputFile={partial}",
            "-Dmdep.includeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"mvn could not resolve Kafka {version}:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    partial.replace(cp_file)
