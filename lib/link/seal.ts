// Authenticated encryption of UDP datagrams (ChaCha20-Poly1305, node:crypto), sans-IO.
// Sealed layout: [link header, 28 B, version 2][counter u64][ciphertext of the payload][tag 16 B];
// header and counter are associated data. The nonce is the sender's message counter, strictly
// increasing per key, so a nonce never repeats; the key is HKDF(shared secret, salt = the sender's
// session, "udp <from>-><to>"), fresh per session and per direction. The receiver reads only the
// session field (to pick the key) before the tag is verified; every other decision waits for it.
// After authentication a sliding window (window.ts) refuses replayed counters.
import { createCipheriv, createDecipheriv } from "node:crypto";

import { deriveKey } from "../format/kdf.ts";
import { LINK_VERSION, MESSAGE_HEADER_BYTES } from "./message.ts";
import { SequenceWindow } from "./window.ts";

export const LINK_VERSION_SEALED = 2;
export const COUNTER_BYTES = 8;
export const TAG_BYTES = 16;
export const SEAL_OVERHEAD_BYTES = COUNTER_BYTES + TAG_BYTES;
/** A sender starts a new session (new key) before its counter reaches this. */
export const REKEY_AFTER_MESSAGES = 2n ** 48n;
const SESSION_OFFSET = 4;

function udpKey(secret: Uint8Array, session: bigint, from: number, to: number): Buffer {
  const salt = Buffer.alloc(8);
  salt.writeBigUInt64LE(session);
  return deriveKey(secret, salt, `udp ${from}->${to}`);
}

function nonce(counter: bigint): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64LE(counter, 4);
  return n;
}

export class Sealer {
  private readonly key: Buffer;
  private readonly session: bigint;
  private counter = 0n;

  constructor(secret: Uint8Array, session: bigint, from: number, to: number) {
    this.key = udpKey(secret, session, from, to);
    this.session = session;
  }

  get exhausted(): boolean {
    return this.counter >= REKEY_AFTER_MESSAGES;
  }

  /** Seals an encoded message (version-1 header + payload) into a new datagram. */
  seal(message: Uint8Array): Buffer {
    const payloadBytes = message.length - MESSAGE_HEADER_BYTES;
    const session = new DataView(message.buffer, message.byteOffset + SESSION_OFFSET, 8).getBigUint64(0, true);
    if (session !== this.session) throw new Error(`assertion failed: sealing a message of session ${session} with the key of session ${this.session}`);
    const out = Buffer.allocUnsafe(message.length + SEAL_OVERHEAD_BYTES);
    out.set(message.subarray(0, MESSAGE_HEADER_BYTES), 0);
    out[0] = LINK_VERSION_SEALED;
    const counter = ++this.counter;
    out.writeBigUInt64LE(counter, MESSAGE_HEADER_BYTES);
    const cipher = createCipheriv("chacha20-poly1305", this.key, nonce(counter), { authTagLength: TAG_BYTES });
    cipher.setAAD(out.subarray(0, MESSAGE_HEADER_BYTES + COUNTER_BYTES), { plaintextLength: payloadBytes });
    const body = MESSAGE_HEADER_BYTES + COUNTER_BYTES;
    const encrypted = cipher.update(message.subarray(MESSAGE_HEADER_BYTES));
    encrypted.copy(out, body);
    cipher.final();
    cipher.getAuthTag().copy(out, body + payloadBytes);
    return out;
  }
}

export type OpenResult = { ok: true; message: Buffer } | { ok: false; reason: "short" | "version" | "auth" | "replay" };

/** Opens datagrams from one peer: keys per peer session, a replay window per session. */
export class Opener {
  private readonly secret: Uint8Array;
  private readonly from: number;
  private readonly to: number;
  private session = -1n;
  private key: Buffer = Buffer.alloc(0);
  private readonly window = new SequenceWindow();

  constructor(secret: Uint8Array, from: number, to: number) {
    this.secret = secret;
    this.from = from;
    this.to = to;
  }

  /** Verifies and decrypts; returns the message with a version-1 header, or why it was refused. */
  open(datagram: Uint8Array): OpenResult {
    if (datagram.length < MESSAGE_HEADER_BYTES + SEAL_OVERHEAD_BYTES) return { ok: false, reason: "short" };
    if (datagram[0] !== LINK_VERSION_SEALED) return { ok: false, reason: "version" };
    const view = Buffer.from(datagram.buffer, datagram.byteOffset, datagram.length);
    const session = view.readBigUInt64LE(SESSION_OFFSET);
    const key = session === this.session ? this.key : udpKey(this.secret, session, this.from, this.to);
    const counter = view.readBigUInt64LE(MESSAGE_HEADER_BYTES);
    const body = MESSAGE_HEADER_BYTES + COUNTER_BYTES;
    const payloadBytes = datagram.length - body - TAG_BYTES;
    const decipher = createDecipheriv("chacha20-poly1305", key, nonce(counter), { authTagLength: TAG_BYTES });
    decipher.setAAD(view.subarray(0, body), { plaintextLength: payloadBytes });
    decipher.setAuthTag(view.subarray(body + payloadBytes));
    const out = Buffer.allocUnsafe(MESSAGE_HEADER_BYTES + payloadBytes);
    decipher.update(view.subarray(body, body + payloadBytes)).copy(out, MESSAGE_HEADER_BYTES);
    try {
      decipher.final();
    } catch {
      return { ok: false, reason: "auth" };
    }
    // Authenticated: now the session and counter may be believed.
    if (session !== this.session) {
      if (session < this.session) return { ok: false, reason: "replay" };
      this.session = session;
      this.key = key;
      this.window.reset();
    }
    if (this.window.check(counter) !== "new") return { ok: false, reason: "replay" };
    view.copy(out, 0, 0, MESSAGE_HEADER_BYTES);
    out[0] = LINK_VERSION;
    return { ok: true, message: out };
  }
}
