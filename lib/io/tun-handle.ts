// The typed facade of the addon's TUN interface (addon/tun.cc) for lib/tun: only lib/io touches the
// raw addon. The batch views start() returns are native-owned memory (external ArrayBuffers the
// reader thread keeps alive): transferring or dropping them cannot free or move what the thread
// writes into; they are marked untransferable here too, so postMessage/structuredClone copy them.
import { markAsUntransferable } from "node:worker_threads";

import { addon, nativeSyscallFailure, syscallName, type NativeTunBatchHandler, type NativeTunHandle, type NativeTunInfo } from "./native.ts";

export { nativeSyscallFailure, syscallName };
export type { NativeTunBatchHandler as TunBatchHandler, NativeTunInfo as TunHandleInfo };

/** One TUN interface handle; every method is synchronous and throws errors carrying errno/syscallId. */
export type TunHandle = NativeTunHandle;

export function newTunHandle(): TunHandle {
  const handle = new (addon().NativeTun)();
  const start = handle.start.bind(handle);
  handle.start = (onBatch: NativeTunBatchHandler): [Uint8Array, Uint32Array][] => {
    const slots = start(onBatch);
    for (const [packets, lengths] of slots) {
      markAsUntransferable(packets.buffer);
      markAsUntransferable(lengths.buffer);
    }
    return slots;
  };
  return handle;
}
