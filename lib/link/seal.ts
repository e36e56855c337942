// Authenticated encryption of UDP datagrams (ChaCha20-Poly1305, RFC 8439), sans-IO. The cipher is
// OpenSSL's, through the addon (addon/aead.cc: one reused context instead of node:crypto's object
// per call, ~5x less per datagram; test/unit/link-seal.test.ts checks it against node:crypto).
// Sealed layout: [link header, 28 B, version 2][counter u64][ciphertext of the payload][tag 16 B];
// header and counter are associated data. The nonce is the sender's message counter, strictly
// increasing per key, so a nonce never repeats; the key is HKDF(shared secret, salt = the sender's
// session, "udp <from>-><to>"), fresh per session and per direction. The receiver reads only the
// session field (to pick the key) before the tag is verified; every other decision waits for it.
// After authentication a sliding window (window.ts) refuses replayed counters.
import { deriveKey } from "../format/kdf.ts";
import { ErrorCode, LunlinkError } from "../io/errors.ts";
import { addon } from "../io/native.ts";
import { decodeHeader, encodeHeader, LINK_VERSION, MESSAGE_HEADER_BYTES, type MessageHeader } from "./message.ts";
import { SequenceWindow } from "./window.ts";

export const LINK_VERSION_SEALED = 2;
export const COUNTER_BYTES = 8;
export const TAG_BYTES = 16;
export const SEAL_OVERHEAD_BYTES = COUNTER_BYTES + TAG_BYTES;
/** A sender refuses to seal past this many datagrams under one key (a restart is a new session and key). */
export const REKEY_AFTER_MESSAGES = 2n ** 48n;
const SESSION_OFFSET = 4;

function udpKey(secret: Uint8Array, session: bigint, from: number, to: number): Buffer {
  const salt = Buffer.alloc(8);
  salt.writeBigUInt64LE(session);
  return deriveKey(secret, salt, `udp ${from}->${to}`);
}

/** The 96-bit nonce of a counter, written into `n` (reused: the cipher copies it synchronously). */
function nonce(n: Buffer, counter: bigint): Buffer {
  n.writeBigUInt64LE(counter, 4);
  return n;
}

export class Sealer {
  private readonly key: Buffer;
  private readonly session: bigint;
  private counter = 0n;
  private readonly nonce = Buffer.alloc(12);

  constructor(secret: Uint8Array, session: bigint, from: number, to: number) {
    this.key = udpKey(secret, session, from, to);
    this.session = session;
  }

  /** Seals an encoded message (version-1 header + payload) into a new datagram. */
  seal(message: Uint8Array): Buffer {
    const decoded = decodeHeader(message, 0, message.length);
    if (!decoded.ok) throw new Error(`assertion failed: sealing a message whose header does not decode (${decoded.reason})`);
    return this.sealParts(decoded.header, message.subarray(MESSAGE_HEADER_BYTES));
  }

  /** Seals a header and payload straight into a new datagram (no intermediate message). */
  sealParts(header: MessageHeader, payload: Uint8Array): Buffer {
    if (header.session !== this.session) throw new Error(`assertion failed: sealing a message of session ${header.session} with the key of session ${this.session}`);
    if (this.counter >= REKEY_AFTER_MESSAGES) {
      throw new LunlinkError(ErrorCode.KeyExhausted, `this session sealed ${this.counter} datagrams, the bound for one key: restart the node for a new session and key`);
    }
    const body = MESSAGE_HEADER_BYTES + COUNTER_BYTES;
    const out = Buffer.allocUnsafe(body + payload.length + TAG_BYTES);
    encodeHeader(out, 0, header);
    out[0] = LINK_VERSION_SEALED;
    const counter = ++this.counter;
    out.writeBigUInt64LE(counter, MESSAGE_HEADER_BYTES);
    addon().aeadSeal(this.key, nonce(this.nonce, counter), out.subarray(0, body), payload, out.subarray(body));
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
  private readonly nonce = Buffer.alloc(12);

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
    const out = Buffer.allocUnsafe(MESSAGE_HEADER_BYTES + payloadBytes);
    if (!addon().aeadOpen(key, nonce(this.nonce, counter), view.subarray(0, body), view.subarray(body, body + payloadBytes), view.subarray(body + payloadBytes), out.subarray(MESSAGE_HEADER_BYTES))) {
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
