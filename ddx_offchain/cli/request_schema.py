"""`python -m ddx_offchain.cli.request_schema [--declarations]`: print the request types as the ES module the JS
client builds its typed data from (clients/js/src/request_types.mjs), or, with `--declarations`, as the TypeScript
declarations of that module (clients/js/src/request_types.d.mts: each request's message and builder fields).
tests/app/test_js_client.py checks both committed files."""

from __future__ import annotations

import json
import sys

from ..protocol.requests import request_schema

COMMAND = ".venv/bin/python -m ddx_offchain.cli.request_schema"
HEADER = (
    "// Generated from ddx_offchain.protocol.requests.request_schema(): do not edit by hand.\n"
    f"// Regenerate: {COMMAND} > clients/js/src/request_types.mjs\n"
    "// (tests/app/test_js_client.py fails when this file and the Python types differ.)\n"
)
DECLARATIONS_HEADER = (
    "// Generated from ddx_offchain.protocol.requests.request_schema(): do not edit by hand.\n"
    f"// Regenerate: {COMMAND} --declarations > clients/js/src/request_types.d.mts\n"
    "// (tests/app/test_js_client.py fails when this file and the Python types differ.)\n"
)


def render() -> str:
    return HEADER + "export default " + json.dumps(request_schema(), indent=1) + ";\n"


def parse(text: str) -> dict:
    """The document inside a rendered module (for the check)."""
    body = text.split("export default ", 1)[1].rstrip().removesuffix(";")
    return json.loads(body)


# An ABI type as the signed message holds it (requests.mjs encodes every uint as a decimal string, every address as
# EIP-55 and every bytes32 as lowercase 0x-hex) and as a builder takes it (a uint also as a bigint or a safe integer,
# a bytes32 also as a readable name such as "main" or "ETHP").
_MESSAGE_TS = {"address": "string", "bytes32": "string", "bool": "boolean"}
_INPUT_TS = {"address": "AddressInput", "bytes32": "Bytes32Input", "bool": "boolean"}


def _ts(abi: str, table: dict[str, str], struct_suffix: str) -> str:
    if abi.endswith("[]"):
        return f"{_ts(abi[:-2], table, struct_suffix)}[]"
    if abi in table:
        return table[abi]
    if abi.startswith("uint"):
        return "string" if table is _MESSAGE_TS else "UintInput"
    return abi + struct_suffix  # a referenced struct (Action)


def _interface(name: str, fields: list[dict], table: dict[str, str], suffix: str) -> str:
    body = "".join(f"  {f['name']}: {_ts(f['type'], table, suffix)};\n" for f in fields)
    return f"export interface {name}{suffix} {{\n{body}}}\n"


def _literal_object(members: dict[str, int]) -> str:
    return "{ " + "; ".join(f"readonly {k}: {v}" for k, v in members.items()) + " }"


def render_declarations() -> str:
    """request_types.d.mts: per request type its signed message (`PlaceOrderMessage`: the encoded fields) and its
    builder fields (`PlaceOrderInput`: every field, in the types a builder accepts; requests.d.mts makes the ones a
    builder fills optional), the maps from type name to both, and the schema document's shape with its enums as
    literal types."""
    schema = request_schema()
    out = [DECLARATIONS_HEADER, "\n",
           "/** A uint as a builder takes it: a decimal string, a bigint or a safe integer (never a float). */\n",
           "export type UintInput = string | bigint | number;\n",
           "/** A bytes32 as a builder takes it: 0x + 64 hex, a readable name of 1..32 bytes (\"main\", \"ETHP\"),\n",
           " * or 0 or null for the zero id (`market: 0`: every market). */\n",
           "export type Bytes32Input = string | 0 | null;\n",
           "/** An address as a builder takes it: any case, or mixed case with a valid EIP-55 checksum. */\n",
           "export type AddressInput = string;\n"]
    for name, struct in schema["structs"].items():
        out += ["\n", _interface(name, struct["fields"], _MESSAGE_TS, "Message"),
                _interface(name, struct["fields"], _INPUT_TS, "Input")]
    for name, spec in schema["requests"].items():
        out += ["\n", f"/** {spec['typeString']} (type id {spec['typeId']}) */\n",
                _interface(name, spec["fields"], _MESSAGE_TS, "Message"),
                _interface(name, spec["fields"], _INPUT_TS, "Input")]
    out += ["\n", _interface("Receipt", schema["receipt"]["fields"], _MESSAGE_TS, "Message")]
    names = list(schema["requests"])
    out += ["\n/** Every request type's signed message, by type name. */\nexport interface RequestMessages {\n",
            *(f"  {n}: {n}Message;\n" for n in names), "}\n",
            "/** Every request type's builder fields (all of them; see requests.d.mts for the optional ones). */\n",
            "export interface RequestInputs {\n", *(f"  {n}: {n}Input;\n" for n in names), "}\n",
            "export type RequestType = keyof RequestMessages;\n"]
    fields = "readonly fields: readonly FieldSpec[]"
    structs = "; ".join(f"readonly {s}: {{ readonly typeString: string; {fields} }}" for s in schema["structs"])
    out += ["\nexport interface FieldSpec {\n  readonly name: string;\n  readonly type: string;\n}\n",
            "export interface RequestSpec {\n  readonly typeId: number;\n  readonly typeString: string;\n",
            f"  readonly typeHash: string;\n  {fields};\n  readonly referenced: readonly string[];\n",
            "  readonly agentSignable: boolean;\n  readonly forceable: boolean;\n}\n",
            "export interface Enums {\n",
            *(f"  readonly {name}: {_literal_object(members)};\n" for name, members in schema["enums"].items()),
            "}\n",
            "/** The document request_types.mjs exports (ddx_offchain.protocol.requests.request_schema()). */\n",
            "export interface RequestSchema {\n",
            "  readonly domain: { readonly name: string; readonly version: string };\n",
            "  readonly replayWindowMs: number;\n  readonly notForcedFields: readonly string[];\n",
            "  readonly maxQuantity: string;\n  readonly maxBatchActions: number;\n",
            "  readonly requests: { readonly [T in RequestType]: RequestSpec };\n",
            f"  readonly structs: {{ {structs} }};\n",
            f"  readonly receipt: {{ readonly typeString: string; readonly typeHash: string; {fields} }};\n",
            "  readonly enums: Enums;\n}\n",
            "declare const schema: RequestSchema;\nexport default schema;\n"]
    return "".join(out)


if __name__ == "__main__":
    print(render_declarations() if "--declarations" in sys.argv[1:] else render(), end="")
