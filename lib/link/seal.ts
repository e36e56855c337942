// Authenticated encryption of UDP datagrams (ChaCha20-Poly1305, RFC 8439), sans-IO. The cipher is
// OpenSSL's, through the addon (addon/aead.cc: one reused context instead of node:crypto's object
// per call, ~5x less per datagram; test/unit/link-seal.test.ts checks it against node:crypto).
// Sealed layout: [link header, 28 B, version 2 or 3][counter u64][ciphertext][tag 16 B]; header and
// counter are associated data. The nonce is the sender's message counter, strictly increasing per
// key, so a nonce never repeats. Keys: HKDF(shared secret, salt = sender session | receiver session,
// "udp <from>-><to>"). Until the sender has authenticated the receiver's session it seals with
// receiver session 0 ("unbound", version 2); the receiver takes only heartbeats from unbound
// datagrams. Once bound (version 3) a datagram verifies only under the receiver's current session,
// so after the receiver restarts nothing captured before can be replayed to it: its new session is
// in every key. The receiver reads only the session field (to pick the key) before the tag is
// verified; every other decision waits for it. After authentication a sliding window (window.ts)
// refuses replayed counters.
import { deriveKey } from "../format/kdf.ts";
import { ErrorCode, LunlinkError } from "../errors.ts";
import { aeadOpen, aeadSeal } from "../io/aead.ts";
import { decodeHeader, encodeHeader, LINK_VERSION, MESSAGE_HEADER_BYTES, type MessageHeader } from "./message.ts";
import { SequenceWindow } from "./window.ts";

/** Sealed before the sender knew the receiver's session: the receiver takes heartbeats only. */
export const LINK_VERSION_SEALED = 2;
/** Sealed under both sessions: everything is taken. */
export const LINK_VERSION_BOUND = 3;
export const COUNTER_BYTES = 8;
export const TAG_BYTES = 16;
export const SEAL_OVERHEAD_BYTES = COUNTER_BYTES + TAG_BYTES;
/** A sender refuses to seal past this many datagrams under one key (a restart is a new session and key). */
export const REKEY_AFTER_MESSAGES = 2n ** 48n;
const SESSION_OFFSET = 4;

function udpKey(secret: Uint8Array, senderSession: bigint, receiverSession: bigint, from: number, to: number): Buffer {
  const salt = Buffer.alloc(16);
  salt.writeBigUInt64LE(senderSession, 0);
  salt.writeBigUInt64LE(receiverSession, 8);
  return deriveKey(secret, salt, `udp ${from}->${to}`);
}

/** The 96-bit nonce of a counter, written into `n` (reused: the cipher copies it synchronously). */
function nonce(n: Buffer, counter: bigint): Buffer {
  n.writeBigUInt64LE(counter, 4);
  return n;
}

export class Sealer {
  private key: Buffer;
  private readonly secret: Uint8Array;
  private readonly session: bigint;
  private readonly from: number;
  private readonly to: number;
  /** The receiver's session once authenticated (0n: not yet known, datagrams are unbound). */
  private peerSession = 0n;
  private counter = 0n;
  private readonly nonce = Buffer.alloc(12);

  constructor(secret: Uint8Array, session: bigint, from: number, to: number) {
    this.secret = secret;
    this.session = session;
    this.from = from;
    this.to = to;
    this.key = udpKey(secret, session, 0n, from, to);
  }

  /** The receiver's session, learned from an authenticated message: seal bound to it from now on. */
  bindTo(peerSession: bigint): void {
    if (peerSession === this.peerSession) return;
    this.peerSession = peerSession;
    this.key = udpKey(this.secret, this.session, peerSession, this.from, this.to);
  }

  get bound(): boolean {
    return this.peerSession !== 0n;
  }

  /** Seals an encoded message (version-1 header + payload) into a new datagram. */
  seal(message: Uint8Array): Buffer {
    const decoded = decodeHeader(message, 0, message.length);
    if (!decoded.ok) throw new Error(`assertion failed: sealing a message whose header does not decode (${decoded.reason})`);
    return this.sealParts(decoded.header, message.subarray(MESSAGE_HEADER_BYTES));
  }

  /** Seals a header and payload straight into a new datagram (no intermediate message). */
  sealParts(header: MessageHeader, payload: Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(MESSAGE_HEADER_BYTES + COUNTER_BYTES + payload.length + TAG_BYTES);
    this.sealInto(out, header, payload);
    return out;
  }

  /**
   * Seals a header and payload into `out` (at least MESSAGE_HEADER_BYTES + SEAL_OVERHEAD_BYTES + payload.length bytes, e.g. a slot of
   * a send batch: no allocation); returns the datagram's length.
   */
  sealInto(out: Uint8Array, header: MessageHeader, payload: Uint8Array): number {
    if (header.session !== this.session) throw new Error(`assertion failed: sealing a message of session ${header.session} with the key of session ${this.session}`);
    if (this.counter >= REKEY_AFTER_MESSAGES) {
      throw new LunlinkError(ErrorCode.KeyExhausted, `this session sealed ${this.counter} datagrams, the bound for one key: restart the node for a new session and key`);
    }
    const body = MESSAGE_HEADER_BYTES + COUNTER_BYTES;
    const length = body + payload.length + TAG_BYTES;
    encodeHeader(out, 0, header);
    out[0] = this.bound ? LINK_VERSION_BOUND : LINK_VERSION_SEALED;
    const counter = ++this.counter;
    new DataView(out.buffer, out.byteOffset, body).setBigUint64(MESSAGE_HEADER_BYTES, counter, true);
    aeadSeal(this.key, nonce(this.nonce, counter), out.subarray(0, body), payload, out.subarray(body, length));
    return length;
  }
}

export type OpenResult = { ok: true; message: Buffer; bound: boolean } | { ok: false; reason: "short" | "version" | "auth" | "replay" };

/**
 * Opens datagrams from one peer, for a receiver whose own session is `mySession`: keys per peer
 * session (bound to ours, or unbound), one replay window per peer session (the sender's counter runs
 * on across its switch from unbound to bound).
 */
export class Opener {
  private readonly secret: Uint8Array;
  private readonly from: number;
  private readonly to: number;
  private readonly mySession: bigint;
  private session = -1n;
  private readonly keys = new Map<string, Buffer>();
  private readonly window = new SequenceWindow();
  private readonly nonce = Buffer.alloc(12);

  constructor(secret: Uint8Array, from: number, to: number, mySession: bigint) {
    this.secret = secret;
    this.from = from;
    this.to = to;
    this.mySession = mySession;
  }

  /**
   * Verifies and decrypts; returns the message with a version-1 header, or why it was refused. With
   * `into` (at least datagram.length bytes, reused by the caller: no allocation per datagram) the
   * message is a view of it, valid until the next call.
   */
  open(datagram: Uint8Array, into?: Buffer): OpenResult {
    if (datagram.length < MESSAGE_HEADER_BYTES + SEAL_OVERHEAD_BYTES) return { ok: false, reason: "short" };
    const version = datagram[0];
    if (version !== LINK_VERSION_SEALED && version !== LINK_VERSION_BOUND) return { ok: false, reason: "version" };
    const bound = version === LINK_VERSION_BOUND;
    const view = Buffer.from(datagram.buffer, datagram.byteOffset, datagram.length);
    const session = view.readBigUInt64LE(SESSION_OFFSET);
    const key = this.key(session, bound);
    const counter = view.readBigUInt64LE(MESSAGE_HEADER_BYTES);
    const body = MESSAGE_HEADER_BYTES + COUNTER_BYTES;
    const payloadBytes = datagram.length - body - TAG_BYTES;
    const out = into === undefined ? Buffer.allocUnsafe(MESSAGE_HEADER_BYTES + payloadBytes) : into.subarray(0, MESSAGE_HEADER_BYTES + payloadBytes);
    if (!aeadOpen(key, nonce(this.nonce, counter), view.subarray(0, body), view.subarray(body, body + payloadBytes), view.subarray(body + payloadBytes), out.subarray(MESSAGE_HEADER_BYTES))) {
      return { ok: false, reason: "auth" };
    }
    // Authenticated: now the session and counter may be believed.
    if (session !== this.session) {
      if (session < this.session) return { ok: false, reason: "replay" };
      this.session = session;
      this.keys.clear();
      this.window.reset();
    }
    if (this.window.check(counter) !== "new") return { ok: false, reason: "replay" };
    view.copy(out, 0, 0, MESSAGE_HEADER_BYTES);
    out[0] = LINK_VERSION;
    return { ok: true, message: out, bound };
  }

  /** The key of a peer session, bound to ours or not; kept only for the current peer session. */
  private key(session: bigint, bound: boolean): Buffer {
    if (session !== this.session) return udpKey(this.secret, session, bound ? this.mySession : 0n, this.from, this.to);
    const id = bound ? "b" : "u";
    let key = this.keys.get(id);
    if (key === undefined) {
      key = udpKey(this.secret, session, bound ? this.mySession : 0n, this.from, this.to);
      this.keys.set(id, key);
    }
    return key;
  }
}
