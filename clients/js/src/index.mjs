// @ddx/client: the operator API from JavaScript (docs/app.md "The JS client").
export * from "./requests.mjs";
export * from "./client.mjs";
export * from "./book.mjs";
export * from "./units.mjs";
export * from "./escape.mjs";
export * from "./proofs.mjs";
export { EXCHANGE_ABI, ERC20_ABI } from "./abi.mjs";
