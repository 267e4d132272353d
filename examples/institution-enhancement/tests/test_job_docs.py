"""The job documents (Batch Workflow Standard §6) exist, cover what the standard asks, and link correctly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT

DOCS = REPO_ROOT / "docs"
JOB = DOCS / "institution-enhancement"
OWN_DOCS = [JOB / "workflow-template.md", JOB / "runbook.md", DOCS / "write-your-own-consumer.md", DOCS / "manifest.md"]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def headings(path: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in path.read_text().splitlines() if line.startswith("#")]


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


@pytest.mark.parametrize("document", OWN_DOCS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_relative_links_resolve(document: Path) -> None:
    targets = [t for t in LINK.findall(document.read_text()) if not t.startswith(("http://", "https://"))]
    assert targets, "the document links to something"
    missing = [t for t in targets if not (document.parent / t).exists()]
    assert missing == []


def test_the_runbook_covers_what_the_standard_requires() -> None:
    found = headings(JOB / "runbook.md")
    for required in (
        "Start and stop",
        "Environment and secrets",
        "Health checks",
        "Kafka topics and consumer group",
        "DLQ handling",
        "Troubleshooting",
        "Escalation",
    ):
        assert required in found


def test_every_alert_links_to_a_runbook_section() -> None:
    rules = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    anchors = {anchor(h) for h in headings(JOB / "runbook.md")}
    for group in rules["groups"]:
        for rule in group["rules"]:
            url = rule["annotations"]["runbook_url"]
            path, _, fragment = url.partition("#")
            assert (REPO_ROOT / path) == JOB / "runbook.md"
            assert fragment in anchors, rule["alert"]


def test_the_runbook_names_every_setting_the_deployment_sets() -> None:
    runbook = (JOB / "runbook.md").read_text()
    manifests = REPO_ROOT / "deploy" / "k8s" / "institution-enhancement"
    config = yaml.safe_load((manifests / "configmap.yaml").read_text())["data"]
    deployment = yaml.safe_load((manifests / "deployment.yaml").read_text())
    secrets = [item["name"] for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]]
    for variable in [*config, *secrets]:
        assert f"`{variable}`" in runbook, variable


def test_the_workflow_template_is_filled_in() -> None:
    text = (JOB / "workflow-template.md").read_text()
    found = headings(JOB / "workflow-template.md")
    for section in (
        "Metadata",
        "Objective & Scope",
        "Flow Overview",
        "Task Inventory",
        "Deployment & Scheduling",
        "Kafka Contracts",
        "Testing & Validation",
        "Readiness Checklist",
        "Notes",
    ):
        assert section in found
    assert not re.search(r"`<[^`>]+>`", text), "no template placeholder left"
    assert "financial.institution.v1.dlq" in text
    assert "record_id" in text


def test_the_manifest_lists_both_documents_of_every_job() -> None:
    manifest = (DOCS / "manifest.md").read_text()
    jobs = sorted(p.parent for p in DOCS.glob("*/runbook.md"))
    assert JOB in jobs
    for job in jobs:
        for document in ("workflow-template.md", "runbook.md"):
            assert f"({job.name}/{document})" in manifest, f"{job.name}/{document}"
