"""The audit's shape: rooms read in one sitting, views that only load, call and dump, a read
side that never reaches into the app, and the names callers import still where they were."""

from __future__ import annotations

import pytest

from tests.unit.test_architecture import ROOT, imports_by_file, violations

pytestmark = pytest.mark.unit

AUDIT_MODULES = [*sorted((ROOT / "app" / "audit").glob("*.py")), ROOT / "app" / "reconcile.py"]
AUDIT_MODULES += [ROOT / "projections" / "history.py", ROOT / "projections" / "event_types.py"]


@pytest.mark.parametrize("path", AUDIT_MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_audit_module_reads_in_one_sitting(path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 400


def test_the_audit_views_run_no_sql_and_catch_nothing_up() -> None:
    files = imports_by_file("app/api")
    assert (
        violations({"app/api/audit.py": files["app/api/audit.py"]}, ("sqlalchemy", "projections.runner"))
        == {}
    )


def test_the_audit_reads_never_import_the_app_or_flask() -> None:
    files = imports_by_file("projections")
    mine = {rel: files[rel] for rel in ("projections/history.py", "projections/event_types.py")}
    assert violations(mine, ("app", "flask", "flask_smorest", "workers")) == {}


def test_callers_keep_importing_verify_and_the_chain_checks_from_the_package() -> None:
    from app import audit
    from app.audit.verification import verify

    assert audit.verify is verify and callable(audit.recompute_settlement)
    assert {"ChainCheck", "SqlChainCheck", "iter_audit_rows", "iter_notifications"} <= set(audit.__all__)
