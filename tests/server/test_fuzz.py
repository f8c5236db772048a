"""Schemathesis over the whole OpenAPI schema, logged in as each role, on both databases.

No response may be a 5xx, and every status must be one the schema declares for the
operation. `make test` runs a bounded number of cases per operation (DARI_FUZZ_EXAMPLES,
default 5); `make fuzz` runs many more. The hostile values that once gave 500s (ids of
2^31 and more, NUL bytes, datetimes near year 1 and 9999) are also sent on purpose to
every operation that takes them, so they are covered whatever Hypothesis draws.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from sqlmodel import Session

from server.accounts.models import Role
from tests.conftest import make_client
from tests.factories import login, make_user

EXAMPLES = int(os.environ.get("DARI_FUZZ_EXAMPLES", "5"))
HOSTILE_INTS = ("2147483648", "-2147483649", "99999999999999999999")
HOSTILE_STRINGS = ("a\x00b",)
HOSTILE_DATETIMES = ("0001-01-01T00:00:00", "9999-12-31T23:59:59", "9999-12-31T23:59:59-23:59")

pytestmark = pytest.mark.slow


@pytest.fixture(params=[Role.GP, Role.SPECIALIST, Role.ADMIN], ids=lambda role: str(role))
def role_client(request: pytest.FixtureRequest, app: FastAPI, db: Session) -> Iterator[TestClient]:
    user = make_user(db, request.param)
    with make_client(app, raise_server_exceptions=False) as client:
        login(client, user)
        yield client


_schemas: dict[int, list[Any]] = {}


def _operations(app: FastAPI) -> list[Any]:
    if id(app) in _schemas:
        return _schemas[id(app)]
    schema = schemathesis.openapi.from_dict(app.openapi())
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    _schemas[id(app)] = operations
    return operations


def _declared(operation: Any) -> set[str]:
    return {str(status) for status in operation.definition.raw.get("responses", {})}


def _send(client: TestClient, case: Any) -> Any:
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    headers = {
        key: value
        for key, value in (kwargs.get("headers") or {}).items()
        if key.lower() not in ("user-agent", "cookie", "x-csrf-token")
    }
    data = kwargs.get("data")
    return client.request(
        kwargs["method"],
        kwargs["url"],
        headers=headers,
        params=kwargs.get("params"),
        json=kwargs.get("json"),
        content=data if isinstance(data, bytes | str) else None,
        data=data if isinstance(data, dict) else None,
        files=kwargs.get("files"),
    )


def _check(operation: Any, response: Any, what: object) -> None:
    assert response.status_code < 500, f"{operation.label} gave {response.status_code}: {what}"
    assert str(response.status_code) in _declared(operation), (
        f"{operation.label} gave undeclared {response.status_code}: {what}"
    )


def test_schemathesis_finds_no_server_error(app: FastAPI, role_client: TestClient) -> None:
    operations = _operations(app)
    assert len(operations) > 40  # the whole API, not an empty schema
    sent = sum(_fuzz_one(role_client, operation) for operation in operations)
    assert sent >= len(operations) * EXAMPLES  # cases were drawn and sent, not skipped


_strategies: dict[str, Any] = {}


def _strategy(operation: Any) -> Any:
    """Positive and negative cases of one operation, built once for the three roles."""
    if operation.label not in _strategies:
        modes = []
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                modes.append(operation.as_strategy(generation_mode=mode))
            except Exception:  # noqa: BLE001 -- nothing negative to draw for this operation
                continue
        _strategies[operation.label] = st.one_of(*modes)
    return _strategies[operation.label]


def _fuzz_one(client: TestClient, operation: Any) -> int:
    """Send the drawn cases of one operation; how many were sent."""
    sent = 0

    @settings(
        max_examples=EXAMPLES * 2,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_strategy(operation))
    def fuzz(case: Any) -> None:
        nonlocal sent
        sent += 1
        response = _send(client, case)
        _check(operation, response, (case.path_parameters, case.query, case.body))

    try:
        fuzz()
    except Exception as error:  # noqa: BLE001 -- Unsatisfiable: nothing negative to draw
        if type(error).__name__ != "Unsatisfiable":
            raise
    return sent


def _hostile_values(param: dict[str, Any]) -> tuple[str, ...]:
    schema = param.get("schema", {})
    kinds = {schema.get("type")} | {item.get("type") for item in schema.get("anyOf", [])}
    formats = {schema.get("format")} | {item.get("format") for item in schema.get("anyOf", [])}
    if "integer" in kinds:
        return HOSTILE_INTS
    if "date-time" in formats:
        return HOSTILE_DATETIMES
    if "string" in kinds:
        return HOSTILE_STRINGS
    return ()


def test_hostile_parameters_are_refused_cleanly(app: FastAPI, role_client: TestClient) -> None:
    """Each path and query parameter, in turn, gets each value that once broke a database."""
    sent = 0
    for operation in _operations(app):
        raw = operation.definition.raw
        params = raw.get("parameters", [])
        for param in params:
            for value in _hostile_values(param):
                path_values = {
                    p["name"]: "1" for p in params if p["in"] == "path" and p is not param
                }
                query = {}
                if param["in"] == "path":
                    path_values[param["name"]] = value
                elif param["in"] == "query":
                    query[param["name"]] = value
                else:
                    continue
                url = operation.path
                for name, replacement in path_values.items():
                    url = url.replace("{" + name + "}", replacement.replace("\x00", "%00"))
                response = role_client.request(operation.method.upper(), url, params=query)
                sent += 1
                _check(operation, response, (param["name"], value))
                if response.status_code == 422:
                    assert response.json()["error"]["field"], response.text
    assert sent > 50


def _bodies(operation: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """For each field of a JSON body, a minimal body with that field made hostile."""
    content = operation.definition.raw.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return
    reference = content["application/json"]["schema"].get("$ref", "")
    components = operation.schema.raw_schema["components"]["schemas"]
    model = components.get(reference.rsplit("/", 1)[-1], {})
    for name, spec in model.get("properties", {}).items():
        for value in _hostile_values({"schema": spec}):
            yield name, {name: int(value) if value.lstrip("-").isdigit() else value}


def test_hostile_bodies_are_refused_cleanly(app: FastAPI, role_client: TestClient) -> None:
    sent = 0
    for operation in _operations(app):
        if "{" in operation.path:
            url = operation.path
            for param in operation.definition.raw.get("parameters", []):
                url = url.replace("{" + param["name"] + "}", "1")
        else:
            url = operation.path
        for name, body in _bodies(operation):
            response = role_client.request(operation.method.upper(), url, json=body)
            sent += 1
            _check(operation, response, body)
            if response.status_code == 422:
                assert response.json()["error"].get("field") is not None, response.text
            del name
    assert sent > 20
