// A one-line progress bar for long copies, redrawn in place on a terminal (stderr) and silent
// elsewhere (logs and pipes get the final summary only). Redraws at most every 100 ms.
import type { MirrorProgress } from "../mirror/ring-mirror.ts";

const WIDTH = 30;
const REDRAW_MS = 100;

export function progressBar(stream: NodeJS.WriteStream = process.stderr): (p: MirrorProgress) => void {
  if (stream.isTTY !== true) return () => {};
  let lastMs = 0;
  return (p) => {
    const now = Date.now();
    if (p.phase !== "done" && now - lastMs < REDRAW_MS) return;
    lastMs = now;
    const fraction = p.blocksTotal > 0 ? Math.min(1, p.blocksDone / p.blocksTotal) : 1;
    const filled = Math.round(fraction * WIDTH);
    const line = `resync [${"#".repeat(filled)}${".".repeat(WIDTH - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${p.blocksDone}/${p.blocksTotal} blocks, ${(p.bytes / 1048576).toFixed(1)} MiB sent`;
    stream.write(`\r${line}${p.phase === "done" ? "\n" : ""}`);
  };
}
