"""pystac validation without the network: STAC core schemas from pystac's package, extension schemas
vendored in tests/data/stac-schemas (Apache-2.0, see its README). A schema that is not there fails the
validation with a clear error instead of being fetched."""
from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).parent / "data" / "stac-schemas"
EXTENSIONS = "https://stac-extensions.github.io"


def offline_validator():
    from pystac.validation.stac_validator import GetSchemaError, JsonSchemaSTACValidator

    class OfflineValidator(JsonSchemaSTACValidator):
        def __init__(self) -> None:
            super().__init__()
            for path in sorted(SCHEMAS.glob("*/*/schema.json")):
                uri = f"{EXTENSIONS}/{path.parts[-3]}/{path.parts[-2]}/schema.json"
                schema = json.loads(path.read_text(encoding="utf-8"))
                schema["$id"] = uri          # processing v1.1.0 declares v1.0.0 as its $id upstream
                self.schema_cache[uri] = schema

        def _get_schema(self, schema_uri: str) -> dict[str, Any]:
            key = schema_uri.split("#")[0]
            if key not in self.schema_cache:
                raise GetSchemaError(schema_uri, LookupError(
                    f"schema {schema_uri} is not vendored in {SCHEMAS} (tests never fetch schemas)"))
            return self.schema_cache[key]

    return OfflineValidator()


@contextlib.contextmanager
def offline_validation() -> Iterator[None]:
    """pystac's validate()/validate_all() use the offline validator inside the block."""
    from pystac.validation import RegisteredValidator

    before = RegisteredValidator._validator
    RegisteredValidator.set_validator(offline_validator())
    try:
        yield
    finally:
        RegisteredValidator._validator = before


def validate_tree(path: str | Path) -> int:
    """Validate a catalogue or collection and every child and item below it; returns the objects checked."""
    import pystac
    from pystac.validation import validate_all

    root = pystac.read_file(str(path))
    with offline_validation():
        root.validate()
        validate_all(root.to_dict(), str(path))
    return 1 + sum(1 for _ in root.get_items(recursive=True)) + sum(1 for _ in root.get_children())
