// storage.receiveEngine: the I/O engine of a pair's receive volume (the peer's ring the poller reads).
// Absent, the receive volume takes LUNLINK_ENGINE when set, else DEFAULT_RECEIVE_ENGINE ("threads"); the three
// engine choices are taken; anything else is refused with the key named, and by loadConfig with
// ERR_LUNLINK_BAD_CONFIG.
import test from "ava";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

import { DEFAULT_RECEIVE_ENGINE } from "../../lib/defaults.ts";
import { ErrorCode, LunlinkError } from "../../lib/index.ts";
import { receiveVolumeEngine } from "../../lib/link/storage-path.ts";
import { checkConfig, linkOptions, loadConfig } from "../../lib/node/config.ts";
import { scratchDir } from "../helpers/scratch.ts";

const PAIR_BASE = { node: 1, peer: 2, tun: { address: "198.18.100.1/24" }, primary: { bind: "198.18.1.1:7410", peer: "198.18.1.2:7410" } };
const STORAGE = { send: "/dev/a", receive: "/dev/b" };

test("config: storage.receiveEngine absent reaches the link as absent; the receive volume then takes LUNLINK_ENGINE when set, else threads", (t) => {
  t.is(DEFAULT_RECEIVE_ENGINE, "threads");
  const r = checkConfig({ ...PAIR_BASE, storage: STORAGE });
  t.true(r.ok);
  if (!r.ok) return;
  t.is(r.config.storage.receiveEngine, undefined);
  t.false("receiveEngine" in linkOptions(r.config).storage);
  const saved = process.env["LUNLINK_ENGINE"];
  try {
    delete process.env["LUNLINK_ENGINE"];
    t.deepEqual(receiveVolumeEngine(undefined), { engine: "threads" });
    t.deepEqual(receiveVolumeEngine("io_uring"), { engine: "io_uring" });
    process.env["LUNLINK_ENGINE"] = "io_uring";
    t.deepEqual(receiveVolumeEngine(undefined), {}, "LUNLINK_ENGINE set: the Volume takes it");
    t.deepEqual(receiveVolumeEngine("threads"), { engine: "threads" }, "a named engine wins over LUNLINK_ENGINE");
  } finally {
    if (saved === undefined) delete process.env["LUNLINK_ENGINE"];
    else process.env["LUNLINK_ENGINE"] = saved;
  }
});

test("config: storage.receiveEngine takes auto, io_uring and threads as given", (t) => {
  for (const engine of ["auto", "io_uring", "threads"] as const) {
    const r = checkConfig({ ...PAIR_BASE, storage: { ...STORAGE, receiveEngine: engine } });
    t.true(r.ok, engine);
    if (r.ok) t.is(linkOptions(r.config).storage.receiveEngine, engine);
  }
});

test("config: any other storage.receiveEngine is refused naming the key and the value; loadConfig throws ERR_LUNLINK_BAD_CONFIG", async (t) => {
  for (const value of ["uring", "", "THREADS", 1, null]) {
    const r = checkConfig({ ...PAIR_BASE, storage: { ...STORAGE, receiveEngine: value } });
    t.false(r.ok, JSON.stringify(value));
    if (!r.ok) t.like(r.problems[0], { key: "storage.receiveEngine", value });
  }
  const dir = await scratchDir(t);
  const file = join(dir, "node.json");
  await writeFile(file, JSON.stringify({ ...PAIR_BASE, storage: { ...STORAGE, receiveEngine: "uring" } }));
  const error = await t.throwsAsync(loadConfig(file), { instanceOf: LunlinkError });
  t.is(error?.code, ErrorCode.BadConfig);
  t.regex(error?.message ?? "", /storage\.receiveEngine/);
});
