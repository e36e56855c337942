// `lunlink keygen` / `lunlink pubkey`: X25519 key files for a pair (see docs/security.md). The
// private key file is created with mode 0600 (O_EXCL: an existing key is never overwritten unless
// --force); the public key is printed for the peer's config (keys.peerPublic). `lunlink keys
// cluster-secret` writes a cluster's shared secret the same way (lib/node/cluster-secret.ts).
import { open, unlink } from "node:fs/promises";

import { ErrorCode, LunlinkError } from "../errors.ts";
import { generateKeys, publicKeyOf, readPrivateKeyFile } from "../link/keys.ts";
import { writeClusterSecretFile } from "../node/cluster-secret.ts";
import { UsageError } from "./output.ts";
import { flag, parse } from "./args.ts";
import type { Command } from "./command.ts";

export const keygenCommand: Command = {
  summary: "create a private key file (mode 0600) and print its public key",
  usage: "Usage: lunlink keygen FILE [--force]\n\nWrites a new X25519 private key (base64) to FILE with mode 0600 and prints the public key,\nwhich goes into the peer's config as keys.peerPublic. Refuses an existing FILE unless --force.",
  async run(args, out) {
    const parsed = parse(args, { force: { type: "boolean" } }, { min: 1, max: 1 });
    const file = parsed.positionals[0]!;
    const { privateKey, publicKey } = generateKeys();
    if (flag(parsed, "force")) await unlink(file).catch(() => undefined);
    let handle;
    try {
      handle = await open(file, "wx", 0o600);
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      throw new LunlinkError(e.code === "EEXIST" ? ErrorCode.Exists : ErrorCode.System, e.code === "EEXIST" ? `keygen ${file}: the file exists (a key is never overwritten without --force)` : `keygen ${file}: ${e.message}`, { path: file, syscall: "open", cause: error });
    }
    try {
      await handle.chmod(0o600); // the umask cannot widen it, but an inherited ACL default could
      await handle.writeFile(`${privateKey}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    out.stdout.write(`${publicKey}\n`);
  },
};

export const pubkeyCommand: Command = {
  summary: "print the public key of a private key file",
  usage: "Usage: lunlink pubkey FILE\n\nPrints the X25519 public key of the private key in FILE (which must be mode 0600 or stricter).",
  async run(args, out) {
    const parsed = parse(args, {}, { min: 1, max: 1 });
    out.stdout.write(`${publicKeyOf(await readPrivateKeyFile(parsed.positionals[0]!))}\n`);
  },
};

export const keysCommand: Command = {
  summary: "create a cluster secret file (mode 0600) that keys every cluster ring",
  usage: [
    "Usage: lunlink keys cluster-secret FILE [--force]",
    "",
    "Writes 32 random bytes (base64) to FILE with mode 0600. Copy the file to every member of the",
    "cluster (as corosync's authkey: scp, mode 0600), name it in each node's config as",
    "keys.clusterSecret, and format the cluster volume with it (lunlink format --cluster",
    "--cluster-secret FILE). Every node's ring is then authenticated and encrypted under a key",
    "derived from it (docs/format.md, Keyed clusters). Refuses an existing FILE unless --force.",
  ].join("\n"),
  async run(args, out) {
    const parsed = parse(args, { force: { type: "boolean" } }, { min: 2, max: 2 });
    const [what, file] = parsed.positionals as [string, string];
    if (what !== "cluster-secret") throw new UsageError(`lunlink keys: unknown subcommand ${JSON.stringify(what)} (cluster-secret)`);
    await writeClusterSecretFile(file, flag(parsed, "force"));
    out.stdout.write(`wrote a cluster secret to ${file} (mode 0600): copy it to every member, mode 0600\n`);
  },
};
