// Declarations of abi.mjs: human-readable ABI fragments (ethers), checked against ddx_offchain/deployment/abi/.
export declare const EXCHANGE_ABI: string[];
export declare const ERC20_ABI: string[];
