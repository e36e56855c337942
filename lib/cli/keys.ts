// `lunlink keygen` / `lunlink pubkey`: X25519 key files for a pair (see docs/security.md). The
// private key file is created with mode 0600 (O_EXCL: an existing key is never overwritten unless
// --force); the public key is printed for the peer's config (keys.peerPublic).
import { open, unlink } from "node:fs/promises";

import { ErrorCode, LunlinkError } from "../errors.ts";
import { generateKeys, publicKeyOf, readPrivateKeyFile } from "../link/keys.ts";
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
