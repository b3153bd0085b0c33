"""Schemathesis against the OpenAPI document: generated requests to every operation, with
an admin key, must never get a 5xx and must match the documented responses."""

from __future__ import annotations

from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tribes.service import create_app
from tribes.workspace import open_workspace

from .conftest import Built

CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


def test_generated_requests_to_every_operation(service_ws: Built) -> None:
    app = create_app(open_workspace(service_ws.path))
    headers = {"Authorization": f"Bearer {service_ws.keys['admin']}"}
    failures: list[str] = []
    with TestClient(app):  # runs the app's startup (engine, index, audit writer)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [r.ok() for r in schema.get_all_operations()]
        assert len(operations) >= 15

        for op in operations:
            @given(case=op.as_strategy())
            @settings(max_examples=25, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def run(case: Any) -> None:
                response = case.call(headers=headers)
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path}: "
                                    f"{response.status_code} {response.text[:300]}")
                    return
                try:
                    case.validate_response(response, checks=CHECKS)
                except (Exception, BaseExceptionGroup) as exc:  # a documented-response mismatch
                    failures.append(f"{case.method} {case.formatted_path}: {exc}"[:600])

            run()
    assert not failures, "\n".join(failures[:10])
