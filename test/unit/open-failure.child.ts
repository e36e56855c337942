// A process whose ClusterNode.open fails (a peer public key the PeerLink refuses), for
// open-failure.test.ts: prints the refusal and then returns from its top level; it must exit by
// itself, so nothing the failed open took (writer timers, UDP receive threads) may keep it alive.
//   node --import=tsx test/unit/open-failure.child.ts <cluster volume> <base port>
import { generateKeys } from "../../lib/link/keys.ts";
import { DEFAULT_TIMERS } from "../../lib/link/paths.ts";
import { ClusterNode } from "../../lib/node/cluster-node.ts";

const [file, baseArg] = process.argv.slice(2);
const base = Number(baseArg);
const key = generateKeys();
try {
  await ClusterNode.open({
    nodeId: 1,
    subnet: "198.18.100.1/24",
    members: [1, 2].map((node) => ({ node, address: `198.18.100.${node}`, primary: { host: "127.0.0.1", port: base + 2 * (node - 1) }, ring: file!, publicKey: node === 2 ? "not-a-key" : key.publicKey })),
    storage: { dsync: false, pollMaxMs: 2, peerDownMs: 5000 },
    timers: DEFAULT_TIMERS,
    privateKey: key.privateKey,
  });
  console.log("opened: the bad key was not refused");
  process.exitCode = 1;
} catch (error) {
  console.log(`refused ${(error as { code?: string }).code}`);
}
