// Volume and pair UUIDs: 16 raw bytes on disk, RFC 4122 text everywhere else.
import { randomUUID } from "node:crypto";

const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function newUuid(): string {
  return randomUUID();
}

export function isUuid(text: string): boolean {
  return UUID_TEXT.test(text);
}

export function writeUuid(out: Uint8Array, at: number, text: string): void {
  if (!isUuid(text)) throw new Error(`assertion failed: ${JSON.stringify(text)} is not a lower-case UUID`);
  const hex = text.replaceAll("-", "");
  for (let i = 0; i < 16; i++) out[at + i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
}

export function readUuid(bytes: Uint8Array, at: number): string {
  let hex = "";
  for (let i = 0; i < 16; i++) hex += bytes[at + i]!.toString(16).padStart(2, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Compares 16 bytes at `bytes[at]` with `raw` (the UUID pre-encoded once by the caller). */
export function uuidEquals(bytes: Uint8Array, at: number, raw: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (bytes[at + i] !== raw[i]) return false;
  return true;
}

export function uuidBytes(text: string): Uint8Array {
  const raw = new Uint8Array(16);
  writeUuid(raw, 0, text);
  return raw;
}
