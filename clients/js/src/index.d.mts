// @ddx/client's declarations: one .d.mts beside each module (tests/app/test_js_types.py checks that every runtime
// export of index.mjs is declared, and type-checks clients/js/examples/integrator.ts against them).
export * from "./requests.mjs";
export * from "./client.mjs";
export * from "./book.mjs";
export * from "./units.mjs";
export * from "./escape.mjs";
export * from "./proofs.mjs";
export { EXCHANGE_ABI, ERC20_ABI } from "./abi.mjs";
