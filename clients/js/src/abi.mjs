// The contract functions the client and the app call, as ethers human-readable ABI. The full ABIs ship in
// ddx_offchain/deployment/abi/*.json; clients/js/test/abi.test.mjs checks every fragment here against them.
export const EXCHANGE_ABI = [
  "function operators() view returns (address[])",
  "function threshold() view returns (uint256)",
  "function latest_epoch() view returns (uint256)",
  "function checkpoint_root(uint256) view returns (bytes32)",
  "function claimed(address trader, address token) view returns (uint256)",
  "function deposited(address trader, address token) view returns (uint256)",
  "function frozen() view returns (bool)",
  "function last_checkpoint_at() view returns (uint256)",
  "function escape_delay() view returns (uint256)",
  "function forced_deadline() view returns (uint256)",
  "function inbox_coverage() view returns (uint256, uint256, uint256)",
  "function escaped(address trader, address token) view returns (uint256)",
  "function freeze()",
  "function escape(address trader, address token, uint256 balance, uint256 deposited, bytes32[] balance_siblings, uint256 cumulative, bytes32[] withdrawal_siblings, bytes32 absent_other_key, bytes32 absent_other_value_hash) returns (uint256)",
  "event Escape(address indexed trader, address indexed token, uint256 epoch, uint256 balance, uint256 deposited, uint256 cumulative, uint256 paid, uint256 unpaid)",
  "function deposit(address token, uint256 amount)",
  "function forced_count() view returns (uint256)",
  "function force_request(uint8 request_type, bytes fields) returns (uint256)",
  "function claim(address trader, address token, uint256 cumulative, uint256 epoch, bytes32[] siblings) returns (uint256)",
];

export const ERC20_ABI = [
  "function balanceOf(address) view returns (uint256)",
  "function allowance(address owner, address spender) view returns (uint256)",
  "function approve(address spender, uint256 amount) returns (bool)",
  "function transfer(address to, uint256 amount) returns (bool)",
  "function decimals() view returns (uint8)",
  "function symbol() view returns (string)",
];
