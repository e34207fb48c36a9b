// Independent EIP-712 signer for the tests: reads {privateKey, typedData} as JSON on stdin, prints the signature.
import { Wallet } from "ethers";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { privateKey, typedData } = JSON.parse(input);
const types = { ...typedData.types };
delete types.EIP712Domain; // ethers derives the domain type itself
const wallet = new Wallet(privateKey);
const signature = await wallet.signTypedData(typedData.domain, types, typedData.message);
process.stdout.write(JSON.stringify({ address: wallet.address, signature }));
