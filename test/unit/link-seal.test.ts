// Keys and sealed UDP datagrams: key files (mode checked like ssh), X25519 agreement, and the
// AEAD seal: round trip, every bit flip refused, replays and older sessions refused after
// authentication, another key refused, an unsealed datagram refused as a downgrade.
import { createCipheriv } from "node:crypto";
import { writeFile, chmod } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import fc from "fast-check";

import { ErrorCode } from "../../lib/errors.ts";
import { generateKeys, publicKeyOf, readPrivateKeyFile, sharedSecret } from "../../lib/link/keys.ts";
import { encodeMessage, MessageKind, PathId } from "../../lib/link/message.ts";
import { Opener, Sealer, SEAL_OVERHEAD_BYTES } from "../../lib/link/seal.ts";
import { scratchDir } from "../helpers/scratch.ts";
import { addon } from "../../lib/io/native.ts";
import { logSeed, SEED } from "../helpers/random.ts";


function pair() {
  const a = generateKeys();
  const b = generateKeys();
  const ab = sharedSecret(a.privateKey, b.publicKey);
  const ba = sharedSecret(b.privateKey, a.publicKey);
  return { a, b, ab, ba };
}

function message(seq: bigint, payload: Uint8Array, session = 7n): Buffer {
  return encodeMessage({ kind: MessageKind.Data, path: PathId.Primary, node: 1, session, seq, ack: 0n }, payload);
}

test("X25519: both ends agree on the secret; the public key derives from the private key", (t) => {
  const { a, b, ab, ba } = pair();
  t.deepEqual(ab, ba);
  t.is(publicKeyOf(a.privateKey), a.publicKey);
  t.not(a.publicKey, b.publicKey);
  const bad = t.throws(() => sharedSecret(a.privateKey, "not-a-key"));
  t.is((bad as { code?: string }).code, ErrorCode.BadKey);
  t.regex(bad!.message, /expected 32 bytes in base64/);
});

test("a low-order peer public key (all zero, or the order-8 point) is refused with BAD_KEY, not OpenSSL's derivation error", (t) => {
  const { a } = pair();
  const lowOrder = [Buffer.alloc(32), Buffer.from("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", "hex")];
  for (const point of lowOrder) {
    const bad = t.throws(() => sharedSecret(a.privateKey, point.toString("base64")));
    t.is((bad as { code?: string }).code, ErrorCode.BadKey);
    t.regex(bad!.message, /low-order point/);
  }
});

test("a private key file readable by group or others is refused, naming its mode; 0600 is read", async (t) => {
  const dir = await scratchDir(t);
  const file = join(dir, "node.key");
  const { privateKey } = generateKeys();
  await writeFile(file, `${privateKey}\n`, { mode: 0o644 });
  await chmod(file, 0o644);
  const error = await t.throwsAsync(readPrivateKeyFile(file));
  t.is((error as { code?: string }).code, ErrorCode.BadKey);
  t.regex(error!.message, /accessible by group or others \(mode 0644\): chmod 600 it/);
  await chmod(file, 0o600);
  t.is(await readPrivateKeyFile(file), privateKey);
  const missing = await t.throwsAsync(readPrivateKeyFile(join(dir, "none.key")));
  t.regex(missing!.message, /ENOENT/);
});

test("sealed datagrams round-trip; any flipped bit is refused; replays and older sessions are refused", (t) => {
  logSeed(t);
  const { ab, ba } = pair();
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (payload, flipAt) => {
      const sealer = new Sealer(ab, 7n, 1, 2);
      const opener = new Opener(ba, 1, 2, 77n);
      const plain = message(1n, payload);
      const sealed = sealer.seal(plain);
      if (sealed.length !== plain.length + SEAL_OVERHEAD_BYTES) return false;
      if (payload.length > 8 && Buffer.from(sealed).includes(Buffer.from(payload))) return false; // encrypted
      const flipped = Buffer.from(sealed);
      const bit = flipAt % (flipped.length * 8);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      const refused = new Opener(ba, 1, 2, 77n).open(flipped);
      if (refused.ok) return false;
      const opened = opener.open(sealed);
      if (!opened.ok || Buffer.compare(opened.message, plain) !== 0) return false;
      const again = opener.open(sealed);
      return !again.ok && again.reason === "replay";
    }),
    { numRuns: 300, seed: SEED },
  );
  const sealerOld = new Sealer(ab, 5n, 1, 2);
  const sealerNew = new Sealer(ab, 9n, 1, 2);
  const opener = new Opener(ba, 1, 2, 77n);
  const old = sealerOld.seal(message(1n, new Uint8Array(4), 5n));
  t.true(opener.open(sealerNew.seal(message(1n, new Uint8Array(4), 9n))).ok);
  t.deepEqual(opener.open(old), { ok: false, reason: "replay" }, "a datagram of an older session is refused after a newer one authenticated");
});

test("another key, the other direction's key, or an unsealed datagram are refused", (t) => {
  const { ab, ba } = pair();
  const stranger = pair();
  const plain = message(1n, Buffer.from("hello"));
  t.deepEqual(new Opener(ba, 1, 2, 77n).open(new Sealer(stranger.ab, 7n, 1, 2).seal(plain)), { ok: false, reason: "auth" }, "another pair's key");
  t.deepEqual(new Opener(ba, 2, 1, 77n).open(new Sealer(ab, 7n, 1, 2).seal(plain)), { ok: false, reason: "auth" }, "the reverse direction's key (reflection)");
  t.deepEqual(new Opener(ba, 1, 2, 77n).open(Buffer.concat([plain, Buffer.alloc(SEAL_OVERHEAD_BYTES)])), { ok: false, reason: "version" }, "unsealed: downgrade");
  t.deepEqual(new Opener(ba, 1, 2, 77n).open(plain.subarray(0, 20)), { ok: false, reason: "short" });
});

test("the addon's ChaCha20-Poly1305 agrees with node:crypto's both ways (RFC 8439, same key, nonce and AAD)", (t) => {
  logSeed(t);
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 2000 }), (key, nonce, aad, plain) => {
      const sealed = new Uint8Array(plain.length + 16);
      addon().aeadSeal(key, nonce, aad, plain, sealed);
      const cipher = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
      cipher.setAAD(aad, { plaintextLength: plain.length });
      const reference = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      if (Buffer.compare(Buffer.from(sealed), reference) !== 0) return false;
      const opened = new Uint8Array(plain.length);
      if (!addon().aeadOpen(key, nonce, aad, reference.subarray(0, plain.length), reference.subarray(plain.length), opened)) return false;
      if (Buffer.compare(Buffer.from(opened), Buffer.from(plain)) !== 0) return false;
      const forged = Buffer.from(reference);
      forged[forged.length - 1]! ^= 1;
      const refused = new Uint8Array(plain.length).fill(7);
      return !addon().aeadOpen(key, nonce, aad, forged.subarray(0, plain.length), forged.subarray(plain.length), refused) && refused.every((b) => b === 0);
    }),
    { numRuns: 300, seed: SEED },
  );
  t.throws(() => addon().aeadSeal(new Uint8Array(31), new Uint8Array(12), new Uint8Array(0), new Uint8Array(1), new Uint8Array(17)), { message: /key must be 32 bytes/ });
  const shared = new Uint8Array(64);
  t.throws(() => addon().aeadSeal(new Uint8Array(32), new Uint8Array(12), new Uint8Array(0), shared.subarray(0, 16), shared.subarray(8, 40)), { message: /must not overlap/ });
});

test("binding: unbound datagrams open as unbound; once bound, a datagram opens only for the receiver session it was bound to (a restarted receiver refuses captured ones)", (t) => {
  const { ab, ba } = pair();
  const sealer = new Sealer(ab, 7n, 1, 2);
  const receiver = new Opener(ba, 1, 2, 500n);
  const unbound = sealer.seal(message(1n, Buffer.from("hello"), 7n));
  const first = receiver.open(unbound);
  t.true(first.ok && !first.bound, "before binding: authentic but unbound (the link takes heartbeats only)");
  sealer.bindTo(500n);
  t.true(sealer.bound);
  const bound = sealer.seal(message(2n, Buffer.from("data"), 7n));
  const second = receiver.open(bound);
  t.true(second.ok && second.bound, "bound to the receiver's session");
  const restarted = new Opener(ba, 1, 2, 501n);
  t.deepEqual(restarted.open(bound), { ok: false, reason: "auth" }, "replayed to the restarted receiver (new session): refused");
  const replayedUnbound = restarted.open(unbound);
  t.true(replayedUnbound.ok && !replayedUnbound.bound, "an unbound datagram replays only as unbound, which carries no data or control");
});
