"""in-toto statements as plain JSON, built without pydantic: what intoto.py's models dump to.

`build` signs statements on every run that is not a cache hit, and importing pydantic and
building the models' schemas cost about 100 ms of CPU: on two cores, as much as the
evaluation beside which it loaded (issue 17). So the statements `build` signs are made
here as plain dicts, in exactly the shape the models dump to (camelCase names, no null
fields), and serialised once, as `intoto.Statement.dump_bytes` does. The models stay the
definition: tests/unit/test_statement.py validates these dicts through them (their
`extra="forbid"`) and compares the signed bytes with the models' own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from provenance.formats.uris import STATEMENT_TYPE

JSON = dict[str, Any]


def descriptor(
    *,
    name: str | None = None,
    uri: str | None = None,
    digest: Mapping[str, str] | None = None,
    media_type: str | None = None,
    annotations: Mapping[str, Any] | None = None,
) -> JSON:
    """A ResourceDescriptor as its model dumps it: the fields that are not None."""
    fields = {
        "name": name,
        "uri": uri,
        "digest": dict(digest) if digest is not None else None,
        "mediaType": media_type,
        "annotations": dict(annotations) if annotations is not None else None,
    }
    return {k: v for k, v in fields.items() if v is not None}


def plain(item: Any) -> JSON:
    """A descriptor given as a dict, or as an intoto model (tests build those)."""
    dump = getattr(item, "model_dump", None)
    return dict(dump(by_alias=True, exclude_none=True)) if callable(dump) else dict(item)


@dataclass(frozen=True)
class PlainStatement:
    """An in-toto Statement v1, signed as `dump_bytes` gives it (as intoto.Statement)."""

    subject: list[JSON]
    predicate_type: str
    predicate: JSON

    @classmethod
    def of(cls, subject: Iterable[Any], predicate_type: str, predicate: JSON) -> PlainStatement:
        return cls([plain(s) for s in subject], predicate_type, predicate)

    def as_json(self) -> JSON:
        return {
            "_type": STATEMENT_TYPE,
            "subject": self.subject,
            "predicateType": self.predicate_type,
            "predicate": self.predicate,
        }

    def dump_bytes(self) -> bytes:
        """Sorted keys, compact, UTF-8: the bytes signed, never re-made (intoto.py)."""
        return json.dumps(
            self.as_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
