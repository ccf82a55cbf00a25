"""schemathesis, a property-based API tester nobody here wrote, against the live service's own spec: every
operation answers generated requests, valid and not, without a server error and as its schema says.

Its pytest plugin does not run under pytest 9 (it reads a removed `Node._nodeid`), so the test drives its
Python API: one Hypothesis run per operation and generation mode.
"""

from __future__ import annotations

import schemathesis
from conftest import SCHEMATHESIS_KEYS, LiveServer
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

# Fixed cases (derandomize) so CI runs the same requests every time; enough per operation and mode to reach
# each parameter's bounds and the malformed bodies.
CASES = 40
# Every default check but one: "schema-valid data is accepted" cannot hold for uploads, whose schema is any
# bytes (`format: binary`) while only images decode, nor for tensors, whose shape depends on the model.
EXCLUDED_CHECKS = [positive_data_acceptance]


def exercise(operation, mode: GenerationMode, base_url: str) -> int:  # type: ignore[no-untyped-def]
    """Run one operation's generated cases through every default check; the number of cases run."""
    count = 0
    role = "admin" if operation.path.startswith("/v2/repository") else "api"
    key = {"X-API-Key": SCHEMATHESIS_KEYS[role]}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=CASES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        nonlocal count
        count += 1
        case.call_and_validate(base_url=base_url, headers=key, excluded_checks=EXCLUDED_CHECKS)

    run()
    return count


def test_every_operation_keeps_to_its_schema(live_schema, guarded_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    failures: dict[str, str] = {}
    cases = 0
    for result in live_schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                cases += exercise(operation, mode, guarded_server.url)
            except Unsatisfiable:
                continue  # nothing to make invalid: an operation without parameters or body
            except BaseException as exc:  # one operation's failures must not hide another's
                if isinstance(exc, KeyboardInterrupt):
                    raise
                failures[f"{operation.label} ({mode})"] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{message}" for label, message in failures.items())
    assert cases > 500
    print(f"schemathesis: {cases} cases, 0 failures")
