// TUN device end to end, inside throwaway network namespaces only: each test creates one
// (test/helpers/netns.ts, deleted in teardown even on failure) and runs test/helpers/tun-peer.ts in it,
// which opens the TUN with <subnet>.1/24 (198.18.0.0/15) and reports what it observed as JSON.
// Assertions are on contents and counts, never on timings.
import test from "ava";
import { spawnSync } from "node:child_process";

import { createNamespace, runIn } from "../helpers/netns.ts";
import type { TunCounters } from "../../lib/tun/tun.ts";

const PEER = new URL("../helpers/tun-peer.ts", import.meta.url).pathname;

async function peer(ns: string, scenario: string, subnet: string, prefix: string[] = []): Promise<Record<string, unknown>> {
  const command = prefix.length > 0 ? prefix[0]! : process.execPath;
  const args = [...prefix.slice(1), ...(prefix.length > 0 ? [process.execPath] : []), "--import=tsx", PEER, scenario, subnet];
  const stdout = await runIn(ns, command, args, 30_000);
  const line = stdout.trim().split("\n").pop() ?? "";
  return JSON.parse(line) as Record<string, unknown>;
}

type Counters = TunCounters;

test("UDP sent to the TUN's subnet is read from the TUN as IPv4/UDP packets with the payload intact", async (t) => {
  const ns = await createNamespace(t, "tuna");
  const subnet = "198.18.101";
  const out = (await peer(ns, "receive", subnet)) as {
    name: string;
    mtu: number;
    sourcePort: number;
    packets: { version: number; protocol: number; source: string; destination: string; sourcePort: number; destinationPort: number; ipChecksumOk: boolean; payload: string; length: number; totalLength: number }[];
    expected: string[];
    counters: Counters;
  };
  t.is(out.name, "llttun0");
  t.is(out.mtu, 1400);
  t.is(out.packets.length, out.expected.length);
  for (const p of out.packets) {
    t.is(p.version, 4);
    t.is(p.protocol, 17);
    t.is(p.source, `${subnet}.1`);
    t.is(p.destination, `${subnet}.2`);
    t.is(p.sourcePort, out.sourcePort);
    t.is(p.destinationPort, 40_000);
    t.true(p.ipChecksumOk);
    t.is(p.totalLength, p.length);
  }
  t.deepEqual(out.packets.map((p) => p.payload).sort(), [...out.expected].sort());
  t.true(out.counters.packetsIn >= out.expected.length);
  t.true(out.counters.batches >= 1 && out.counters.batches <= out.counters.packetsIn);
});

test("hand-built IPv4/UDP packets written to the TUN (single and batched) reach a bound socket byte-exact", async (t) => {
  const ns = await createNamespace(t, "tunb");
  const subnet = "198.18.102";
  const out = (await peer(ns, "send", subnet)) as {
    singleOk: number;
    batchOk: number;
    received: { payload: string; address: string; port: number }[];
    expected: string[];
    counters: Counters;
    bytesExpected: number;
  };
  t.is(out.singleOk, 3);
  t.is(out.batchOk, 7);
  t.deepEqual(
    out.received.map((r) => r.payload).sort(),
    [...out.expected].sort(),
  );
  for (const r of out.received) {
    t.is(r.address, `${subnet}.2`);
    t.is(r.port, 5555);
  }
  t.is(out.counters.packetsOut, 10);
  t.is(out.counters.bytesOut, out.bytesExpected);
  t.is(out.counters.dropped, 0);
});

test("a burst of 5000 packets is read completely, several packets per batch", async (t) => {
  const ns = await createNamespace(t, "tunc");
  const out = (await peer(ns, "burst", "198.18.103")) as { sent: number; unique: number; malformed: number; maxBatch: number; counters: Counters };
  t.is(out.sent, 5000);
  t.is(out.unique, 5000);
  t.is(out.malformed, 0);
  t.true(out.counters.batches < out.counters.packetsIn, `batches ${out.counters.batches} packets ${out.counters.packetsIn}`);
  t.true(out.maxBatch > 1 && out.maxBatch <= 256);
});

test("bad name, MTU and address, a name in use and a non-TUN name give coded errors; close is idempotent and removes the interface", async (t) => {
  const ns = await createNamespace(t, "tund");
  const out = (await peer(ns, "errors", "198.18.104")) as {
    results: { what: string; code?: string; errno?: number; syscall?: string; path?: string; message?: string; unexpected?: string }[];
    listedBeforeClose: boolean;
    listedAfterClose: boolean;
    secondCloseOk: boolean;
    writeAfterClose: { code?: string };
    reopened: string;
  };
  const byWhat = new Map(out.results.map((r) => [r.what, r]));
  for (const what of ["name too long", "name with a slash", "mtu too small", "mtu not an integer", "cidr without prefix", "cidr octet 256", "cidr prefix 33"]) {
    const r = byWhat.get(what);
    t.is(r?.code, "ERR_LUNLINK_INVALID_ARGUMENT", what);
  }
  t.regex(byWhat.get("name too long")?.message ?? "", /lunlink-too-long-name/);
  t.regex(byWhat.get("mtu too small")?.message ?? "", /mtu must be an integer in 68\.\.65535; found 67/);
  t.regex(byWhat.get("cidr octet 256")?.message ?? "", /198\.18\.256\.1\/24/);
  t.like(byWhat.get("name held by another TUN"), { code: "ERR_LUNLINK_BUSY", errno: 16, syscall: "ioctl", path: "/dev/net/tun" });
  t.like(byWhat.get("name of a non-TUN interface"), { code: "ERR_LUNLINK_BUSY", errno: 22, syscall: "ioctl", path: "/dev/net/tun" });
  t.true(out.listedBeforeClose);
  t.false(out.listedAfterClose);
  t.true(out.secondCloseOk);
  t.is(out.writeAfterClose.code, "ERR_LUNLINK_CLOSED");
  t.is(out.reopened, "lltdup0");
});

const hasSetpriv = spawnSync("setpriv", ["--version"]).status === 0;

(hasSetpriv ? test : test.skip)("without CAP_NET_ADMIN opening the TUN gives ERR_LUNLINK_PERMISSION_DENIED (EPERM)", async (t) => {
  const ns = await createNamespace(t, "tune");
  const out = await peer(ns, "noPermission", "198.18.105", ["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin"]);
  t.like(out, { code: "ERR_LUNLINK_PERMISSION_DENIED", errno: 1, syscall: "ioctl", path: "/dev/net/tun" });
});
