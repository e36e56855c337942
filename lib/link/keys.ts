// Static X25519 keys (WireGuard-style: 32 raw bytes, base64) and the keys derived from them. A node
// has one private key (a file readable by its owner only, refused otherwise, as ssh does) and knows
// its peer's public key; both ends compute the same shared secret, and every working key is derived
// from it with HKDF-SHA256 over a fresh salt (a UDP session, a writer epoch) and a label naming the
// direction, so no two directions or sessions ever share a key. All crypto is node:crypto.
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, type KeyObject } from "node:crypto";
import { open, stat } from "node:fs/promises";

import { deriveKey, KEY_BYTES } from "../format/kdf.ts";
import { uuidBytes } from "../format/uuid.ts";
import { ErrorCode, LunlinkError } from "../errors.ts";

// DER prefixes of X25519 PKCS#8 private and SPKI public keys (RFC 8410), followed by the 32 raw bytes.
const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

/** A 32-byte key in base64, as keygen writes and pubkey prints it (44 characters, one "="). */
export const KEY_BASE64 = /^[A-Za-z0-9+/]{43}=$/;

export interface KeyPair {
  privateKey: string;
  publicKey: string;
}

export function generateKeys(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  return { privateKey: rawPrivate(privateKey).toString("base64"), publicKey: rawPublic(publicKey).toString("base64") };
}

/** The public key of a base64 private key. */
export function publicKeyOf(privateKeyBase64: string): string {
  return rawPublic(createPublicKey(privateKeyObject(privateKeyBase64, "private key"))).toString("base64");
}

/** Reads a private key file, refusing one that group or others can read or write. */
export async function readPrivateKeyFile(path: string): Promise<string> {
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    throw new LunlinkError(ErrorCode.BadKey, `private key ${path}: ${e.code ?? e.message}`, { path, syscall: "stat", cause: error, ...(e.errno === undefined ? {} : { errno: Math.abs(e.errno) }) });
  }
  if ((mode & 0o077) !== 0) {
    throw new LunlinkError(ErrorCode.BadKey, `private key ${path} is accessible by group or others (mode ${(mode & 0o777).toString(8).padStart(4, "0")}): chmod 600 it`, { path });
  }
  const handle = await open(path, "r");
  try {
    const text = (await handle.readFile("utf8")).trim();
    privateKeyObject(text, `private key ${path}`);
    return text;
  } finally {
    await handle.close();
  }
}

/** The X25519 shared secret of our private key and the peer's public key (refuses low-order points). */
export function sharedSecret(privateKeyBase64: string, peerPublicBase64: string): Buffer {
  const privateKey = privateKeyObject(privateKeyBase64, "private key");
  const publicKey = publicKeyObject(peerPublicBase64, "peer public key");
  let secret: Buffer;
  try {
    secret = diffieHellman({ privateKey, publicKey });
  } catch (error) {
    // OpenSSL refuses a low-order point itself (the derivation yields all zeroes) before the check below.
    throw new LunlinkError(ErrorCode.BadKey, "the peer public key is a low-order point (X25519 derivation refused)", { cause: error });
  }
  if (secret.every((b) => b === 0)) throw new LunlinkError(ErrorCode.BadKey, "the peer public key is a low-order point (shared secret all zero)");
  return secret;
}

/**
 * The ring key of one direction (writer -> peer) of a pair: HKDF over the X25519 secret, salted with
 * the pair's UUID. The ring derives its per-epoch record keys and MAC keys from it (lib/ring/keys.ts).
 */
export function ringKey(secret: Uint8Array, pairUuid: string, writerNode: number, peerNode: number): Buffer {
  return deriveKey(secret, uuidBytes(pairUuid), `ring ${writerNode}->${peerNode}`);
}

function decodeRaw(base64: string, what: string): Buffer {
  const raw = Buffer.from(base64, "base64");
  if (!KEY_BASE64.test(base64) || raw.length !== KEY_BYTES) {
    throw new LunlinkError(ErrorCode.BadKey, `${what}: expected 32 bytes in base64 (44 characters, as from lunlink keygen), found ${JSON.stringify(base64.length > 60 ? `${base64.slice(0, 60)}...` : base64)}`);
  }
  return raw;
}

function privateKeyObject(base64: string, what: string): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, decodeRaw(base64, what)]), format: "der", type: "pkcs8" });
}

function publicKeyObject(base64: string, what: string): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, decodeRaw(base64, what)]), format: "der", type: "spki" });
}

function rawPrivate(key: KeyObject): Buffer {
  return (key.export({ format: "der", type: "pkcs8" }) as Buffer).subarray(PKCS8_PREFIX.length);
}

function rawPublic(key: KeyObject): Buffer {
  return (key.export({ format: "der", type: "spki" }) as Buffer).subarray(SPKI_PREFIX.length);
}
