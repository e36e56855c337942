// Sealed datagrams at their edges: the shortest datagram that opens (empty payload) and one byte
// less, every version byte other than 2 and 3, a peer session switch that must forget the old
// replay window and keys, the per-kind key cache (unbound and bound under one session), a forgery
// that must not poison that cache, the sealer's assertions, and its refusal at the rekey bound.
// link-seal.test.ts covers round trips, bit flips, replays and binding.
import test from "ava";

import { ErrorCode } from "../../lib/errors.ts";
import { generateKeys, sharedSecret } from "../../lib/link/keys.ts";
import { encodeMessage, MESSAGE_HEADER_BYTES, MessageKind, PathId } from "../../lib/link/message.ts";
import { LINK_VERSION_BOUND, LINK_VERSION_SEALED, Opener, REKEY_AFTER_MESSAGES, Sealer, SEAL_OVERHEAD_BYTES } from "../../lib/link/seal.ts";

function secrets() {
  const a = generateKeys();
  const b = generateKeys();
  return { ab: sharedSecret(a.privateKey, b.publicKey), ba: sharedSecret(b.privateKey, a.publicKey) };
}

function message(seq: bigint, payload: Uint8Array, session: bigint): Buffer {
  return encodeMessage({ kind: MessageKind.Data, path: PathId.Primary, node: 1, session, seq, ack: 0n }, payload);
}

test("seal: an empty payload gives the shortest datagram, which opens; one byte less is short", (t) => {
  const { ab, ba } = secrets();
  const sealer = new Sealer(ab, 7n, 1, 2);
  const plain = message(1n, new Uint8Array(0), 7n);
  const sealed = sealer.seal(plain);
  t.is(sealed.length, MESSAGE_HEADER_BYTES + SEAL_OVERHEAD_BYTES);
  const opened = new Opener(ba, 1, 2, 77n).open(sealed);
  t.true(opened.ok, "the shortest datagram opens");
  t.deepEqual(opened.ok ? [...opened.message] : [], [...plain]);
  t.deepEqual(new Opener(ba, 1, 2, 77n).open(sealed.subarray(0, sealed.length - 1)), { ok: false, reason: "short" });
});

test("seal: a version byte other than sealed (2) or bound (3) is refused as 'version'", (t) => {
  const { ab, ba } = secrets();
  const sealed = new Sealer(ab, 7n, 1, 2).seal(message(1n, Uint8Array.of(1, 2, 3), 7n));
  t.is(sealed[0], LINK_VERSION_SEALED);
  for (const version of [0, 1, 4, 255]) {
    const copy = Buffer.from(sealed);
    copy[0] = version;
    t.deepEqual(new Opener(ba, 1, 2, 77n).open(copy), { ok: false, reason: "version" }, `version ${version}`);
  }
  const asBound = Buffer.from(sealed);
  asBound[0] = LINK_VERSION_BOUND;
  t.deepEqual(new Opener(ba, 1, 2, 77n).open(asBound), { ok: false, reason: "auth" }, "an unbound datagram relabelled bound fails authentication");
});

test("seal: a newer peer session starts a new replay window (its counter 1 opens after the old session's 1..3)", (t) => {
  const { ab, ba } = secrets();
  const opener = new Opener(ba, 1, 2, 77n);
  const before = new Sealer(ab, 5n, 1, 2);
  for (let i = 1n; i <= 3n; i++) t.true(opener.open(before.seal(message(i, Uint8Array.of(Number(i)), 5n))).ok);
  const after = new Sealer(ab, 6n, 1, 2);
  for (let i = 1n; i <= 3n; i++) t.true(opener.open(after.seal(message(i, Uint8Array.of(Number(i)), 6n))).ok, `new session, counter ${i}`);
  t.deepEqual(opener.open(before.seal(message(4n, Uint8Array.of(4), 5n))), { ok: false, reason: "replay" }, "the old session is over");
});

test("seal: under one peer session the unbound and bound keys are each kept and used, in any order", (t) => {
  const { ab, ba } = secrets();
  const opener = new Opener(ba, 1, 2, 77n);
  const sealer = new Sealer(ab, 7n, 1, 2);
  const seen: string[] = [];
  const send = (seq: bigint) => {
    const result = opener.open(sealer.seal(message(seq, Uint8Array.of(Number(seq)), 7n)));
    seen.push(result.ok ? (result.bound ? "bound" : "unbound") : result.reason);
  };
  send(1n);
  send(2n);
  sealer.bindTo(77n);
  sealer.bindTo(77n);
  send(3n);
  send(4n);
  sealer.bindTo(0n);
  t.false(sealer.bound, "binding to session 0 is unbound again");
  send(5n);
  sealer.bindTo(77n);
  send(6n);
  t.deepEqual(seen, ["unbound", "unbound", "bound", "bound", "unbound", "bound"]);
});

test("seal: a forged datagram claiming another peer session neither switches the session nor spoils the keys", (t) => {
  const { ab, ba } = secrets();
  const opener = new Opener(ba, 1, 2, 77n);
  const current = new Sealer(ab, 7n, 1, 2);
  t.true(opener.open(current.seal(message(1n, Uint8Array.of(1), 7n))).ok);
  const forged = new Sealer(ab, 9n, 1, 2).seal(message(1n, Uint8Array.of(2), 9n));
  forged[forged.length - 1]! ^= 1;
  t.deepEqual(opener.open(forged), { ok: false, reason: "auth" });
  t.true(opener.open(current.seal(message(2n, Uint8Array.of(3), 7n))).ok, "the current session still opens (its cached key intact)");
  current.bindTo(77n);
  const forgedBound = new Sealer(ab, 9n, 1, 2);
  forgedBound.bindTo(77n);
  const fake = forgedBound.seal(message(1n, Uint8Array.of(4), 9n));
  fake[MESSAGE_HEADER_BYTES + 9]! ^= 0x80;
  t.deepEqual(opener.open(fake), { ok: false, reason: "auth" });
  t.true(opener.open(current.seal(message(3n, Uint8Array.of(5), 7n))).ok, "bound datagrams of the current session still open");
  const restarted = new Sealer(ab, 10n, 1, 2);
  t.true(opener.open(restarted.seal(message(1n, Uint8Array.of(6), 10n))).ok, "a genuine newer session is still adopted after the forgeries");
});

test("seal: refuses a message whose header does not decode, or of another session", (t) => {
  const { ab } = secrets();
  const sealer = new Sealer(ab, 7n, 1, 2);
  t.throws(() => sealer.seal(Buffer.alloc(10)), { message: /assertion failed: sealing a message whose header does not decode \(short\)/ });
  t.throws(() => sealer.seal(message(1n, new Uint8Array(0), 8n)), { message: /assertion failed: sealing a message of session 8 with the key of session 7/ });
});

test("seal: the sealer seals up to REKEY_AFTER_MESSAGES datagrams under one key and refuses the next", (t) => {
  const { ab, ba } = secrets();
  const sealer = new Sealer(ab, 7n, 1, 2);
  // 2^48 seals cannot run in a test: start the counter just below the bound (TypeScript privacy only).
  (sealer as unknown as { counter: bigint }).counter = REKEY_AFTER_MESSAGES - 1n;
  const last = sealer.seal(message(1n, Uint8Array.of(1), 7n));
  t.is(last.readBigUInt64LE(MESSAGE_HEADER_BYTES), REKEY_AFTER_MESSAGES, "the bound-th datagram is sealed");
  t.true(new Opener(ba, 1, 2, 77n).open(last).ok);
  const error = t.throws(() => sealer.seal(message(2n, Uint8Array.of(2), 7n)));
  t.is((error as { code?: string }).code, ErrorCode.KeyExhausted);
  t.regex(error!.message, /sealed 281474976710656 datagrams/);
});
