"""in-toto Statement v1 and SLSA Provenance v1 models (our own output: extra="forbid").

Statement:   https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md
Descriptor:  https://github.com/in-toto/attestation/blob/main/spec/v1/resource_descriptor.md
Provenance:  https://slsa.dev/spec/v1.0/provenance
Test result: https://github.com/in-toto/attestation/blob/main/spec/predicates/test-result.md

Python fields are snake_case; the wire is camelCase through aliases. `dump_bytes` is the
single serialisation used for signing: the bytes it returns are what gets signed. The
statements `build` signs are written as plain JSON in these models' shape instead
(plainjson.py: no pydantic on that path); these models stay their definition, and
tests/unit/test_statement.py validates that JSON through them.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from provenance.formats.uris import (  # noqa: F401 - re-exported: the models and their URIs belong together
    BUILD_TYPE,
    BUILDER_ID,
    SLSA_PROVENANCE_V1,
    STATEMENT_TYPE,
    TEST_RESULT_V01,
)


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class ResourceDescriptor(_Model):
    name: str | None = None
    uri: str | None = None
    digest: dict[str, str] | None = None
    media_type: str | None = None
    annotations: dict[str, Any] | None = None


class Statement(_Model):
    type_: str = Field(default=STATEMENT_TYPE, alias="_type")
    subject: list[ResourceDescriptor]
    predicate_type: str
    predicate: dict[str, Any]

    def dump_bytes(self) -> bytes:
        """Canonical-enough JSON (sorted keys, compact); signed as-is, never re-made."""
        # The predicate is already plain JSON (`as_predicate`), and exclude_none never
        # reaches into a dict field: put it in as it is rather than have pydantic walk a
        # closure of 100,000 entries once more (same bytes: tests/unit/test_statement.py).
        obj = self.model_dump(by_alias=True, exclude_none=True, exclude={"predicate"})
        obj["predicate"] = self.predicate
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class BuildDefinition(_Model):
    build_type: str = BUILD_TYPE
    external_parameters: dict[str, Any]
    internal_parameters: dict[str, Any] | None = None
    resolved_dependencies: list[ResourceDescriptor] = []


class Builder(_Model):
    id: str = BUILDER_ID
    version: dict[str, str] | None = None
    builder_dependencies: list[ResourceDescriptor] | None = None


class BuildMetadata(_Model):
    invocation_id: str | None = None
    started_on: str | None = None
    finished_on: str | None = None


class RunDetails(_Model):
    builder: Builder
    metadata: BuildMetadata | None = None
    byproducts: list[ResourceDescriptor] = []


class Provenance(_Model):
    build_definition: BuildDefinition
    run_details: RunDetails

    def as_predicate(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class TestResult(_Model):
    result: str  # PASSED | WARNED | FAILED
    configuration: list[ResourceDescriptor]
    url: str | None = None
    passed_tests: list[str] | None = None
    warned_tests: list[str] | None = None
    failed_tests: list[str] | None = None

    def as_predicate(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)
