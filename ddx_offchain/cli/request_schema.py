"""`python -m ddx_offchain.cli.request_schema`: print the request types as the ES module the JS client builds its
typed data from (clients/js/src/request_types.mjs). tests/app/test_js_client.py checks the committed file."""

from __future__ import annotations

import json

from ..protocol.requests import request_schema

HEADER = (
    "// Generated from ddx_offchain.protocol.requests.request_schema(): do not edit by hand.\n"
    "// Regenerate: .venv/bin/python -m ddx_offchain.cli.request_schema > clients/js/src/request_types.mjs\n"
    "// (tests/app/test_js_client.py fails when this file and the Python types differ.)\n"
)


def render() -> str:
    return HEADER + "export default " + json.dumps(request_schema(), indent=1) + ";\n"


def parse(text: str) -> dict:
    """The document inside a rendered module (for the check)."""
    body = text.split("export default ", 1)[1].rstrip().removesuffix(";")
    return json.loads(body)


if __name__ == "__main__":
    print(render(), end="")
