// Independent EIP-712 implementation for the tests (ethers v6). Reads JSON on stdin:
//   {"privateKey", "typedData"}   -> prints {"address", "signature"}  (signTypedData)
//   {"typedData", "signature"}    -> prints {"address"}               (verifyTypedData: who signed it)
import { Wallet, verifyTypedData } from "ethers";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { privateKey, typedData, signature } = JSON.parse(input);
const types = { ...typedData.types };
delete types.EIP712Domain; // ethers derives the domain type itself
if (privateKey) {
  const wallet = new Wallet(privateKey);
  const signed = await wallet.signTypedData(typedData.domain, types, typedData.message);
  process.stdout.write(JSON.stringify({ address: wallet.address, signature: signed }));
} else {
  process.stdout.write(JSON.stringify({ address: verifyTypedData(typedData.domain, types, typedData.message, signature) }));
}
