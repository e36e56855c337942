// The cluster secret file: 32 random bytes in base64 (one line, 44 characters, like keygen's keys),
// the same file on every member, like corosync's /etc/corosync/authkey. Every cluster ring's key is
// derived from it (lib/ring/keys.ts clusterRingKey). It is read only if its owner alone can read it
// (mode 0600 or stricter, as ssh and readPrivateKeyFile demand) and written only with mode 0600,
// never over an existing file unless forced. loadClusterKey reads a cluster config's key files as `up`
// does; its errors name the config key and the file, so check-config, doctor and `up` all say which.
import { randomBytes } from "node:crypto";
import { open, stat, unlink } from "node:fs/promises";

import { KEY_BYTES } from "../format/kdf.ts";
import { KEY_BASE64, publicKeyOf, readPrivateKeyFile } from "../link/keys.ts";
import { ErrorCode, LunlinkError } from "../errors.ts";
import type { ClusterConfig, ConfigProblem } from "./config.ts";

/** What loadClusterKey read: this node's private key (UDP sealing) and the cluster secret (keyed rings), if configured. */
export interface ClusterKeys {
  privateKey: string;
  clusterSecret?: Buffer;
}

/**
 * A config value that is wrong only once its file is read (a key file missing, too open, not a key):
 * the message starts with the config key; `problem` is the check-config row (key, value, what is wrong).
 */
export class ConfigValueError extends LunlinkError {
  readonly problem: ConfigProblem;

  constructor(key: string, value: string, cause: unknown) {
    const inner = cause instanceof LunlinkError ? cause : undefined;
    const what = cause instanceof Error ? cause.message : String(cause);
    super(inner?.code ?? ErrorCode.BadConfig, `${key}: ${what}`, {
      ...(inner?.path === undefined ? {} : { path: inner.path }),
      ...(inner?.syscall === undefined ? {} : { syscall: inner.syscall }),
      ...(inner?.errno === undefined ? {} : { errno: inner.errno }),
      cause,
    });
    this.problem = { key, value, allowed: what };
  }
}

/** Runs `read`, tagging what it throws with the config key whose value (a file) it read. */
async function tagged<T>(key: string, value: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    throw new ConfigValueError(key, value, error);
  }
}

/**
 * Reads the key files if keys are configured: the private key (mode checked; a peer's key as our own
 * is refused) and the cluster secret (mode 0600, 32 bytes). `up`, check-config and doctor call it;
 * every error is a ConfigValueError naming the config key.
 */
export async function loadClusterKey(c: ClusterConfig): Promise<ClusterKeys | undefined> {
  if (c.keys === undefined) return undefined;
  const privateFile = c.keys.private;
  const privateKey = await tagged("keys.private", privateFile, () => readPrivateKeyFile(privateFile));
  const mine = publicKeyOf(privateKey);
  const clash = c.cluster.members.find((m) => m.node !== c.node && m.publicKey === mine);
  if (clash !== undefined) {
    const why = new LunlinkError(ErrorCode.BadConfig, "this node's own public key: configure that member's (lunlink pubkey on it)");
    throw new ConfigValueError(`cluster.members[node ${clash.node}].publicKey`, mine, why);
  }
  const secretFile = c.keys.clusterSecret;
  if (secretFile === undefined) return { privateKey };
  return { privateKey, clusterSecret: await tagged("keys.clusterSecret", secretFile, () => readClusterSecretFile(secretFile)) };
}

/** Reads a cluster secret file, refusing one that group or others can access, or that is not 32 bytes in base64. */
export async function readClusterSecretFile(path: string): Promise<Buffer> {
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    throw new LunlinkError(ErrorCode.BadKey, `cluster secret ${path}: ${e.code ?? e.message}`, { path, syscall: "stat", cause: error, ...(e.errno === undefined ? {} : { errno: Math.abs(e.errno) }) });
  }
  if ((mode & 0o077) !== 0) {
    throw new LunlinkError(ErrorCode.BadKey, `cluster secret ${path} is accessible by group or others (mode ${(mode & 0o777).toString(8).padStart(4, "0")}): chmod 600 it`, { path });
  }
  const handle = await open(path, "r");
  try {
    const text = (await handle.readFile("utf8")).trim();
    const secret = Buffer.from(text, "base64");
    if (!KEY_BASE64.test(text) || secret.length !== KEY_BYTES) {
      // The content is secret: say what is wrong with it, never what it is.
      throw new LunlinkError(ErrorCode.BadKey, `cluster secret ${path}: expected ${KEY_BYTES} bytes in base64 (44 characters on one line, as lunlink keys cluster-secret writes), found ${text.length} characters`, { path });
    }
    return secret;
  } finally {
    await handle.close();
  }
}

/** Writes a new cluster secret to `path` with mode 0600 (O_EXCL: an existing file is kept unless `force`). */
export async function writeClusterSecretFile(path: string, force: boolean): Promise<void> {
  if (force) await unlink(path).catch(() => undefined);
  let handle;
  try {
    handle = await open(path, "wx", 0o600);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const exists = e.code === "EEXIST";
    throw new LunlinkError(exists ? ErrorCode.Exists : ErrorCode.System, exists ? `cluster secret ${path}: the file exists (a secret is never overwritten without --force: every member would need the new one)` : `cluster secret ${path}: ${e.message}`, { path, syscall: "open", cause: error });
  }
  try {
    await handle.chmod(0o600); // the umask cannot widen it, but an inherited ACL default could
    await handle.writeFile(`${randomBytes(KEY_BYTES).toString("base64")}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
