// `npm run bench -- seal`: the cost of sealed UDP (lib/link/seal.ts) per datagram, in memory, one
// core: encode only (no keys) vs seal (a new datagram each) vs seal in place into a send batch (what
// the link does: Sealer.sealInto, no allocation), open of a valid datagram (new buffer, and into a
// reused one as the link does), and refusal of a forged one (what a flood of forgeries costs the
// receiver). Side by side in one run; the cipher is the addon's ChaCha20-Poly1305.
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";

import { generateKeys, sharedSecret } from "../lib/link/keys.ts";
import { encodeMessage, MessageKind, PathId } from "../lib/link/message.ts";
import { Opener, Sealer } from "../lib/link/seal.ts";
import { machineLine } from "./machine.ts";
import { ratio, table } from "./stats.ts";

function perCallNs(n: number, f: (i: number) => unknown): number {
  for (let i = 0; i < Math.min(n, 2000); i++) f(i);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) f(i);
  return ((performance.now() - t0) * 1e6) / n;
}

export async function sealBench(): Promise<void> {
  console.log("# seal: UDP datagram encode vs ChaCha20-Poly1305 seal/open (the addon's), one core");
  console.log(await machineLine());
  const a = generateKeys();
  const b = generateKeys();
  const ab = sharedSecret(a.privateKey, b.publicKey);
  const ba = sharedSecret(b.privateKey, a.publicKey);
  const rows: string[][] = [];
  for (const size of [64, 1400, 8192]) {
    const payload = new Uint8Array(randomBytes(size));
    const n = size > 4000 ? 50_000 : 200_000;
    const header = { kind: MessageKind.Data, path: PathId.Primary, node: 1, session: 5n, seq: 1n, ack: 0n };
    const header6 = { ...header, session: 6n };
    const plainNs = perCallNs(n, () => encodeMessage(header, payload));
    const sealer = new Sealer(ab, 5n, 1, 2);
    const sealNs = perCallNs(n, () => sealer.seal(encodeMessage(header, payload)));
    const batch = new Uint8Array(256 * (size + 64));
    let slot = 0;
    const sealIntoNs = perCallNs(n, () => {
      const at = (slot++ & 255) * (size + 64);
      return sealer.sealInto(batch.subarray(at, at + size + 64), header, payload);
    });
    const sealed: Buffer[] = [];
    const source = new Sealer(ab, 6n, 1, 2);
    for (let i = 0; i < n + 4000; i++) sealed.push(source.seal(encodeMessage(header6, payload)));
    const opener = new Opener(ba, 1, 2, 77n);
    let k = 0;
    let opened = 0;
    const openNs = perCallNs(n / 2, () => opener.open(sealed[k++]!).ok && opened++);
    const into = Buffer.allocUnsafe(size + 64);
    const openIntoNs = perCallNs(n / 2, () => opener.open(sealed[k++]!, into).ok && opened++);
    if (opened !== n + 2 * Math.min(n / 2, 2000)) throw new Error(`only ${opened} of ${n + 2 * Math.min(n / 2, 2000)} valid datagrams opened`);
    const forged = Buffer.from(sealed[0]!); // same session as an authenticated one: no key derivation
    forged[forged.length - 1]! ^= 1;
    const refuse = new Opener(ba, 1, 2, 77n);
    refuse.open(sealed[1]!);
    const forgedNs = perCallNs(n, () => refuse.open(forged));
    // A forgery with a session never seen costs a key derivation too (HKDF) before its tag fails.
    const stranger = new Opener(ba, 1, 2, 77n);
    let session = 100n;
    const strangerNs = perCallNs(Math.min(n, 50_000), () => {
      forged.writeBigUInt64LE(session++, 4);
      return stranger.open(forged);
    });
    rows.push([`${size} B`, plainNs.toFixed(0), sealNs.toFixed(0), ratio(sealNs, plainNs), sealIntoNs.toFixed(0), openNs.toFixed(0), openIntoNs.toFixed(0), forgedNs.toFixed(0), strangerNs.toFixed(0), ((size / openIntoNs) * 1e3).toFixed(0)]);
  }
  console.log(table(["payload", "encode ns", "encode+seal ns", "x encode", "seal into batch ns", "open ns", "open into reused ns", "refuse forged ns", "refuse forged, new session ns", "open MB/s (reused)"], rows));
}
