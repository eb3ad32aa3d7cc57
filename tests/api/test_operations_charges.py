"""Charges and documents over HTTP: waive a charge with a reason, acknowledge it as exported
to billing; one document and its PDF, served only from inside the data folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recoup.core.sessions import transaction
from recoup.models import Document
from tests.api.conftest import assert_problem, auth
from tests.runs.test_run_e2e import Cli


@pytest.fixture
def charge_id(env: dict[str, str], tmp_path: Path) -> int:
    """I1 at first_notice after a run on day 5: its 15 EUR late fee, open."""
    cli = Cli(tmp_path)
    cli.setup()
    cli.run(5)
    (charge,) = cli.json("charges")
    assert charge["status"] == "open"
    return int(charge["id"])


def _events(client: TestClient, headers: dict[str, str], event: str) -> list[dict[str, object]]:
    log = client.get("/api/v1/log", params={"event": event}, headers=headers).json()["data"]
    return list(log)


def test_export_then_waive(charge_id: int, client: TestClient, keys: dict[str, str]) -> None:
    collector = auth(keys["collector"])
    url = f"/api/v1/charges/{charge_id}"
    exported = client.post(f"{url}/export", headers={**collector, "Recoup-Reason": "batch 7"})
    assert exported.status_code == 200, exported.text
    assert exported.json() == {
        "id": charge_id, "customer_id": "C1", "invoice_id": "I1", "amount": "15.00",
        "currency": "EUR", "service": "LATE_FEE", "status": "exported",
    }  # fmt: skip
    again = client.post(f"{url}/export", headers=collector)
    assert again.status_code == 200 and again.json()["status"] == "exported"
    (logged,) = _events(client, collector, "charge_exported")  # acknowledged once
    assert logged["actor"] == "collector" and logged["details"]["reason"] == "batch 7"  # type: ignore[index]

    for body, field in (({}, "reason"), ({"reason": "  "}, "reason"), ({"why": "x"}, "why")):
        problem = assert_problem(client.post(f"{url}/waive", json=body, headers=collector), 422)
        assert field in [e["field"] for e in problem["errors"]], body
    assert client.get("/api/v1/charges", headers=collector).json()["data"][0]["status"] == "exported"

    waived = client.post(f"{url}/waive", json={"reason": "goodwill"}, headers=collector)
    assert waived.status_code == 200 and waived.json()["status"] == "waived"
    (entry,) = _events(client, collector, "charge_waived")
    assert entry["actor"] == "collector"
    assert entry["details"] == {  # type: ignore[comparison-overlap]
        **entry["details"], "reason": "goodwill", "previous_status": "exported",  # type: ignore[dict-item]
    }  # fmt: skip
    problem = assert_problem(client.post(f"{url}/waive", json={"reason": "x"}, headers=collector), 409)
    assert problem["detail"].startswith(f"charge {charge_id} was already waived by collector")
    problem = assert_problem(client.post(f"{url}/export", headers=collector), 409)
    assert problem["detail"] == f"charge(s) {charge_id} are waived: not owed, nothing to export"
    assert_problem(client.post("/api/v1/charges/999/export", headers=collector), 404)
    assert_problem(client.post("/api/v1/charges/999/waive", json={"reason": "x"}, headers=collector), 404)


def _document(db_url: str, path: Path) -> int:
    with transaction(db_url) as session:
        row = Document(plan_id=None, kind="letter", path=str(path), invoice_ids=["I1"])
        session.add(row)
        session.flush()
        return row.id


def test_a_document_and_its_pdf(
    env: dict[str, str], db_url: str, tmp_path: Path, client: TestClient, keys: dict[str, str]
) -> None:
    viewer = auth(keys["viewer"])
    data = Path(env["RECOUP_DATA_DIR"])
    letter = data / "documents" / "1" / "7-final-letter.pdf"
    letter.parent.mkdir(parents=True)
    letter.write_bytes(b"%PDF-1.7 a letter")
    inside = _document(db_url, letter)

    shown = client.get(f"/api/v1/documents/{inside}", headers=viewer)
    assert shown.status_code == 200, shown.text
    assert shown.json()["path"] == str(letter) and shown.json()["invoice_ids"] == ["I1"]
    pdf = client.get(f"/api/v1/documents/{inside}/pdf", headers=viewer)
    assert pdf.status_code == 200 and pdf.content == b"%PDF-1.7 a letter"
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == 'attachment; filename="7-final-letter.pdf"'

    outside = tmp_path / "elsewhere.pdf"
    outside.write_bytes(b"%PDF-1.7 not ours")
    problem = assert_problem(client.get(f"/api/v1/documents/{_document(db_url, outside)}/pdf", headers=viewer), 409)
    assert "not ours" not in problem["detail"]
    link = data / "documents" / "1" / "link.pdf"
    link.symlink_to(outside)
    assert_problem(client.get(f"/api/v1/documents/{_document(db_url, link)}/pdf", headers=viewer), 409)
    not_pdf = data / "documents" / "1" / "note.pdf"
    not_pdf.write_bytes(b"hello")
    assert_problem(client.get(f"/api/v1/documents/{_document(db_url, not_pdf)}/pdf", headers=viewer), 409)

    gone = _document(db_url, data / "documents" / "1" / "gone.pdf")
    problem = assert_problem(client.get(f"/api/v1/documents/{gone}/pdf", headers=viewer), 404)
    assert problem["detail"] == f"document {gone}: its file is no longer there"
    assert_problem(client.get("/api/v1/documents/999", headers=viewer), 404)
    assert_problem(client.get("/api/v1/documents/999/pdf", headers=viewer), 404)
