// Issue 15, the node's observability without devices: prom-client metrics of a real pair of Links (on
// loopback, over two O_DIRECT files), the timeline's bound and words, `status --watch` in place on a
// terminal and as plain frames otherwise, and damageTimeoutMs's lower bound in the node config.
import test from "ava";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import pino from "pino";

import { renderStatus, watch, type NodeStatus } from "../../lib/cli/status-view.ts";
import { ErrorCode, LunlinkError } from "../../lib/index.ts";
import type { Transition } from "../../lib/link/paths.ts";
import { MAX_FOLLOW_IDLE_MS, MAX_PAIR_STORAGE_HEARTBEAT_MS } from "../../lib/defaults.ts";
import { linkStatusPace } from "../../lib/link/storage-path.ts";
import { checkConfig, linkOptions, loadConfig, minDamageTimeoutMs } from "../../lib/node/config.ts";
import { NodeObservability } from "../../lib/node/observe.ts";
import { TIMELINE_ENTRIES, Timeline } from "../../lib/node/timeline.ts";
import { linkPair } from "../helpers/pair-files.ts";
import { scratchDir } from "../helpers/scratch.ts";
import { pollUntil } from "../helpers/until.ts";


const until = (what: string, check: () => boolean, limitMs = 15_000): Promise<void> => pollUntil(what, check, limitMs, 10);

const quiet = pino({ level: "silent" });

test("metrics: the lunlink series of a live pair, prom-client's process and event-loop metrics, and both histograms", async (t) => {
  const [one, two] = await linkPair(t);
  const observe = new NodeObservability(quiet);
  observe.attach(one, () => ({ packetsIn: 7, packetsOut: 9 }));
  await until("both paths up, primary active", () => one.status().paths.primary.state === "up" && one.status().paths.storage.state === "up" && one.status().active === "primary");
  two.sendData(new TextEncoder().encode("hello"));
  await until("data delivered", () => one.status().counters.dataDelivered >= 1);
  // A failover as the link reports it (LinkState.tick): the histogram takes silence on the primary until then.
  const t0 = one.core.paths.primary.lastHeardMs;
  one.emit("transition", { atMs: t0 + 180, kind: "active", subject: "storage", from: "primary", to: "storage", detail: "primary down (rx), storage up" } satisfies Transition);
  observe.metrics.observeStorageLatency(1_000, 1_004);
  observe.metrics.observeStorageLatency(2_000, 1_990); // a clock ahead of ours: counted apart

  const text = await observe.metrics.render();
  t.regex(observe.metrics.contentType, /^text\/plain; version=0\.0\.4/);
  for (const line of [
    /^lunlink_path_state\{path="primary"\} 2$/m,
    /^lunlink_path_state\{path="storage"\} 2$/m,
    /^lunlink_active_path\{path="primary"\} 1$/m,
    /^lunlink_data_delivered_total [1-9]\d*$/m,
    /^lunlink_messages_received_total\{path="storage"\} [1-9]\d*$/m,
    /^lunlink_ring_refused_total\{reason="auth"\} 0$/m,
    /^lunlink_ring_faults_total\{reason="damaged"\} 0$/m,
    /^lunlink_udp_refused_total\{reason="replay"\} 0$/m,
    /^lunlink_storage_volume_state\{volume="send"\} 3$/m,
    /^lunlink_tun_packets_in_total 7$/m,
    /^# TYPE lunlink_failovers_total counter$/m,
    /^lunlink_failover_interruption_seconds_bucket\{le="0.2"\} 1$/m,
    /^lunlink_failover_interruption_seconds_bucket\{le="0.15"\} 0$/m,
    /^lunlink_storage_one_way_latency_seconds_bucket\{le="0.005"\} 1$/m,
    /^lunlink_storage_one_way_latency_seconds_count 1$/m,
    /^lunlink_storage_latency_clock_behind_total 1$/m,
    /^process_cpu_user_seconds_total /m,
    /^process_resident_memory_bytes /m,
    /^nodejs_eventloop_lag_p99_seconds /m,
  ]) {
    t.regex(text, line);
  }
  t.is(observe.timeline.entries().at(-1)?.to, "storage", "the failover is on the timeline too");
});

test("metrics: delivered records feed the one-way storage latency from their timestamps", async (t) => {
  const observe = new NodeObservability(quiet, { defaultMetrics: false, wallMs: () => 50_010 });
  observe.ringObserver.delivered?.(50_000n);
  t.regex(await observe.metrics.render(), /^lunlink_storage_one_way_latency_seconds_sum 0\.01$/m);
});

test("timeline: bounded to TIMELINE_ENTRIES, oldest dropped, reasons in words", (t) => {
  const timeline = new Timeline();
  for (let i = 0; i < TIMELINE_ENTRIES + 8; i++) timeline.transition({ atMs: i, kind: "path", subject: "primary", from: "up", to: "suspect", detail: i % 2 === 0 ? "reason rx" : "reason tx" }, 1_700_000_000_000 + i);
  const entries = timeline.entries();
  t.is(entries.length, TIMELINE_ENTRIES);
  t.is(timeline.dropped, 8);
  t.is(entries[0]!.at, new Date(1_700_000_000_008).toISOString());
  t.is(entries[0]!.reason, "nothing heard from the peer (rx)");
  t.is(entries[1]!.reason, "the peer does not echo our heartbeats: one-way (tx)");
  timeline.storage({ component: "send", from: "up", to: "stalled", atMs: 0, attempts: 1, fault: { kind: "stall", reason: "stall", code: "ERR_LUNLINK_IO_STALLED", message: "write stalled 5 s", atMs: 0 } }, 1_700_000_001_000);
  t.like(timeline.entries().at(-1), { kind: "storage", subject: "send volume", from: "up", to: "stalled", reason: "ERR_LUNLINK_IO_STALLED: write stalled 5 s" });
});

function sampleStatus(timeline: NodeStatus["timeline"]): NodeStatus {
  const path = { state: "up", reason: "none", lastHeardAgoMs: 12, upForMs: 5000 };
  const volume = { component: "send", state: "up", forMs: 1, fault: null, parked: 0, attempts: 0, nextAttemptInMs: null, counters: { faults: 0, recoveries: 0, failedAttempts: 0 }, lastOutageMs: null, path: "/dev/x", stalledForMs: null };
  return {
    node: 1,
    peer: 2,
    active: "primary",
    dataOn: "primary",
    paths: { primary: path, storage: path },
    failovers: 1,
    failbacks: 1,
    selfPauses: 0,
    controlPending: 0,
    storage: { state: "up", send: volume, receive: { ...volume, component: "receive" } },
    ring: { headSeq: "10", peerAckSeq: "9", receiveLagRecords: "0", writerQueuedBytes: 0, writerCounters: { framesDropped: 0 }, readerCounters: { lost: "0", damaged: 0, tornSeen: 1, overruns: 0, authFailures: 1, downgrades: 0, replays: 0 } },
    counters: { sent: { primary: 5, storage: 5 }, received: { primary: 5, storage: 5 }, dataDuplicates: 0 },
    tun: { name: "lunlink0", packetsIn: 3, packetsOut: 4 },
    ...(timeline === undefined ? {} : { timeline }),
  } as unknown as NodeStatus;
}

test("status text shows the peer-ring counters and the last transitions with their reasons", (t) => {
  const timeline = new Timeline();
  timeline.transition({ atMs: 0, kind: "path", subject: "primary", from: "up", to: "down", detail: "reason rx" }, Date.now());
  timeline.transition({ atMs: 0, kind: "active", subject: "storage", from: "primary", to: "storage", detail: "primary down (rx), storage up" }, Date.now());
  const text = renderStatus(sampleStatus(timeline.entries()));
  t.regex(text, /peer ring: lost 0, damaged 0, torn seen 1, overruns 0; refused: auth 1, downgrade 0, replay 0/);
  t.regex(text, /^node 1 <-> node 2: active path primary\n/, "data on the active path: nothing more said");
  t.regex(renderStatus({ ...sampleStatus(undefined), dataOn: "storage" }), /^node 1 <-> node 2: active path primary; data on storage \(failback: the ring drains first\)\n/);
  t.regex(renderStatus({ ...sampleStatus(undefined), dataOn: "both" }), /^node 1 <-> node 2: active path primary; data on both paths \(primary suspect\)\n/);
  t.regex(text, /timeline \(last 2 of 2, oldest first\):\n {4}\d\d:\d\d:\d\d\.\d{3} {2}primary +up -> down +nothing heard from the peer \(rx\)\n {4}\d\d:\d\d:\d\d\.\d{3} {2}path +primary -> storage +primary down \(rx\), storage up\n$/);
});

test("status --watch: in place on a terminal (home, lines cleared, rest cleared, cursor back); plain frames otherwise; errors shown and the watch goes on", async (t) => {
  const frames = ["frame one\n", new LunlinkError(ErrorCode.NotFound, "no node is up on /run/x.sock (ENOENT)"), "frame three\n"];
  let n = 0;
  const frame = async () => {
    const next = frames[n++]!;
    if (next instanceof Error) throw next;
    return next;
  };
  const sleeps: number[] = [];
  const options = { intervalS: 2, title: "lunlink status --socket /run/x.sock", signal: new AbortController().signal, sleep: async (ms: number) => void sleeps.push(ms), now: () => new Date(0) };
  const tty: string[] = [];
  t.true(await watch(frame, { write: (s) => tty.push(s), isTTY: true, rows: 40 }, { ...options, count: 3 }));
  t.deepEqual(sleeps, [2000, 2000], "no sleep after the last frame");
  const screen = tty.join("");
  t.true(screen.startsWith("\x1b[?25l\x1b[2J"), "cursor hidden, screen cleared once");
  t.true(screen.endsWith("\x1b[?25h"), "cursor shown again");
  t.is(screen.split("\x1b[H").length - 1, 3, "each frame starts at home");
  t.regex(screen, /Every 2\.0s: lunlink status --socket \/run\/x\.sock {2,}.*1970/);
  t.regex(screen, /frame one\x1b\[K\n\x1b\[J/);
  t.regex(screen, /lunlink: ERR_LUNLINK_NOT_FOUND: no node is up on \/run\/x\.sock \(ENOENT\)\x1b\[K/);

  n = 0;
  const plain: string[] = [];
  t.false(await watch(async () => (n++ === 0 ? "only\n" : Promise.reject(new Error("gone"))), { write: (s) => plain.push(s) }, { ...options, count: 2 }), "the last frame failed");
  const text = plain.join("");
  t.false(text.includes("\x1b"), "no escape sequences in a pipe or log");
  t.regex(text, /^Every 2\.0s: lunlink status --socket \/run\/x\.sock {2}.*\nonly\n\nEvery 2\.0s: .*\nlunlink: gone\n$/);

  const small: string[] = [];
  await watch(async () => "a\nb\nc\nd\ne\n", { write: (s) => small.push(s), isTTY: true, rows: 4 }, { ...options, count: 1 });
  t.false(small.join("").includes("d\x1b[K"), "cut to the terminal's height: the screen never scrolls");

  const stopped = new AbortController();
  stopped.abort();
  const none: string[] = [];
  await watch(frame, { write: (s) => none.push(s) }, { ...options, signal: stopped.signal });
  t.deepEqual(none, [], "an aborted watch shows nothing more");
});

/** The parts of a pair config the config tests below do not vary. */
const PAIR_BASE = { node: 1, peer: 2, tun: { address: "198.18.100.1/24" }, primary: { bind: "198.18.1.1:7410", peer: "198.18.1.2:7410" } };

test("config: storage.damageTimeoutMs below 2 x mirrorLagMs + pollMaxMs is refused with ERR_LUNLINK_BAD_CONFIG naming the arithmetic", async (t) => {
  const ok = checkConfig({ ...PAIR_BASE, storage: { send: "/dev/a", receive: "/dev/b" } });
  t.true(ok.ok);
  if (ok.ok) t.deepEqual([ok.config.storage.damageTimeoutMs, ok.config.storage.mirrorLagMs], [1000, 250], "defaults: 1000 >= 2 x 250 + 16");
  t.is(minDamageTimeoutMs({ mirrorLagMs: 100, pollMaxMs: 5 }), 205);
  t.true(checkConfig({ ...PAIR_BASE, storage: { send: "/dev/a", receive: "/dev/b", mirrorLagMs: 100, pollMaxMs: 5, damageTimeoutMs: 205 } }).ok, "the bound itself is allowed");
  const low = checkConfig({ ...PAIR_BASE, storage: { send: "/dev/a", receive: "/dev/b", mirrorLagMs: 100, pollMaxMs: 5, damageTimeoutMs: 204 } });
  t.false(low.ok);
  if (!low.ok) t.like(low.problems[0], { key: "storage.damageTimeoutMs", value: 204 });
  const dir = await scratchDir(t);
  const file = join(dir, "node.json");
  await writeFile(file, JSON.stringify({ ...PAIR_BASE, storage: { send: "/dev/a", receive: "/dev/b", mirrorLagMs: 2000, damageTimeoutMs: 1000 } }));
  const error = await t.throwsAsync(loadConfig(file), { instanceOf: LunlinkError });
  t.is(error?.code, ErrorCode.BadConfig);
  t.regex(error?.message ?? "", /storage\.damageTimeoutMs = 1000: expected at least 4016 = 2 x mirrorLagMs \(2000\) \+ pollMaxMs \(16\)/);
});

test("config: storage.pollStandbyMaxMs below pollMaxMs is refused; absent, the link gets none and its poller the default", (t) => {
  const ok = checkConfig({ ...PAIR_BASE, storage: { send: "/dev/a", receive: "/dev/b" } });
  t.true(ok.ok);
  if (ok.ok) t.false("pollStandbyMaxMs" in linkOptions(ok.config).storage, "absent: DEFAULT_POLL_STANDBY_MAX_MS applies in the poller");
  const set = checkConfig({ ...PAIR_BASE, storage: { send: "/dev/a", receive: "/dev/b", pollMaxMs: 20, pollStandbyMaxMs: 20 } });
  t.true(set.ok, "equal to pollMaxMs is allowed");
  if (set.ok) t.is(linkOptions(set.config).storage.pollStandbyMaxMs, 20);
  const low = checkConfig({ ...PAIR_BASE, storage: { send: "/dev/a", receive: "/dev/b", pollMaxMs: 20, pollStandbyMaxMs: 19 } });
  t.false(low.ok);
  if (!low.ok) t.like(low.problems[0], { key: "storage.pollStandbyMaxMs", value: 19 });
});

test("config: a pair's timers.storage.heartbeatMs above MAX_PAIR_STORAGE_HEARTBEAT_MS is refused (its idle status re-read, 2 heartbeats, would pass the Poller's bound); at the bound it stays within", (t) => {
  const base = { ...PAIR_BASE, storage: { send: "/dev/a", receive: "/dev/b" } };
  const at = checkConfig({ ...base, timers: { storage: { heartbeatMs: MAX_PAIR_STORAGE_HEARTBEAT_MS, suspectMs: 3 * MAX_PAIR_STORAGE_HEARTBEAT_MS, downMs: 6 * MAX_PAIR_STORAGE_HEARTBEAT_MS } } });
  t.true(at.ok, "the bound itself is allowed");
  t.true(linkStatusPace(MAX_PAIR_STORAGE_HEARTBEAT_MS).statusIdleMs <= MAX_FOLLOW_IDLE_MS, "its idle status re-read is within the Poller's bound");
  t.true(linkStatusPace(MAX_PAIR_STORAGE_HEARTBEAT_MS + 1).statusIdleMs > MAX_FOLLOW_IDLE_MS, "one ms more would not be");
  const over = checkConfig({ ...base, timers: { storage: { heartbeatMs: MAX_PAIR_STORAGE_HEARTBEAT_MS + 1, suspectMs: 3 * MAX_PAIR_STORAGE_HEARTBEAT_MS, downMs: 6 * MAX_PAIR_STORAGE_HEARTBEAT_MS } } });
  t.false(over.ok);
  if (!over.ok) t.like(over.problems[0], { key: "timers.storage.heartbeatMs", value: MAX_PAIR_STORAGE_HEARTBEAT_MS + 1 });
});

test("config: tun.offload defaults on, false is taken (a peer older than superpackets), anything else is refused naming the key", (t) => {
  const on = checkConfig({ ...PAIR_BASE, storage: { send: "/dev/a", receive: "/dev/b" } });
  t.true(on.ok && on.config.tun.offload);
  const off = checkConfig({ ...PAIR_BASE, tun: { ...PAIR_BASE.tun, offload: false }, storage: { send: "/dev/a", receive: "/dev/b" } });
  t.true(off.ok && !off.config.tun.offload);
  const bad = checkConfig({ ...PAIR_BASE, tun: { ...PAIR_BASE.tun, offload: "yes" }, storage: { send: "/dev/a", receive: "/dev/b" } });
  t.false(bad.ok);
  if (!bad.ok) t.like(bad.problems[0], { key: "tun.offload", value: "yes" });
});
