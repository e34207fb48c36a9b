// The test wallet the browser tests inject as window.ethereum: an EIP-1193 provider backed by a local key, which
// the app calls exactly as it calls MetaMask (eth_requestAccounts, eth_signTypedData_v4, eth_sendTransaction,
// reads). It signs here, in node, and forwards everything else to the chain's JSON-RPC.
import assert from "node:assert/strict";
import { JsonRpcProvider, NonceManager, Wallet } from "ethers";

/** The wallet behind window.ethereum: a local key; what it cannot answer itself goes to the chain's JSON-RPC. */
export function testWallet(key, rpc, chainId) {
  const provider = new JsonRpcProvider(rpc, chainId, { staticNetwork: true, pollingInterval: 250 });
  const wallet = new Wallet(key, provider);
  const sender = new NonceManager(wallet);
  const calls = [];
  async function handle(method, params = []) {
    calls.push(method);
    switch (method) {
      case "eth_requestAccounts":
      case "eth_accounts":
        return [wallet.address];
      case "eth_chainId":
        return "0x" + chainId.toString(16);
      case "wallet_switchEthereumChain":
        return null;
      case "eth_signTypedData_v4": {
        assert.equal(params[0].toLowerCase(), wallet.address.toLowerCase());
        const doc = JSON.parse(params[1]);
        const { EIP712Domain, ...types } = doc.types;
        return wallet.signTypedData(doc.domain, types, doc.message);
      }
      case "eth_sendTransaction": {
        const [tx] = params;
        assert.equal(tx.from.toLowerCase(), wallet.address.toLowerCase());
        const sent = await sender.sendTransaction({ to: tx.to, data: tx.data, value: tx.value ?? 0, gasLimit: tx.gas ?? tx.gasLimit });
        return sent.hash;
      }
      default:
        return provider.send(method, params);
    }
  }
  return { wallet, provider, calls, handle };
}

export const INJECT = () => {
  const listeners = {};
  window.ethereum = {
    isTestWallet: true,
    request: async ({ method, params }) => {
      const { ok, value, error } = await window.__testWalletRequest(method, params ?? []);
      if (!ok) throw Object.assign(new Error(error), { code: -32603 }); // internal error (4001 would be a user refusal)
      return value;
    },
    on: (event, fn) => { (listeners[event] ??= []).push(fn); },
    removeListener: (event, fn) => { listeners[event] = (listeners[event] ?? []).filter((f) => f !== fn); },
  };
};

/** Give `page` the wallet: window.ethereum forwards to `user.handle`; failures are collected in `errors`. */
export async function injectWallet(page, user, errors) {
  await page.exposeFunction("__testWalletRequest", async (method, params) => {
    try {
      return { ok: true, value: await user.handle(method, params) };
    } catch (err) {
      errors.push(`${method}: ${err.shortMessage ?? err.message}`);
      return { ok: false, error: err.shortMessage ?? err.message };
    }
  });
  await page.addInitScript(INJECT);
}
