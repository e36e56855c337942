// The typed facade of the addon's TUN interface (addon/tun.cc) for lib/tun: only lib/io touches the
// raw addon. The batch views start() returns are native-owned memory (external ArrayBuffers the
// reader thread keeps alive): transferring or dropping them cannot free or move what the thread
// writes into (never marked untransferable here: see addon/buffer.h).
import { addon, nativeSyscallFailure, syscallName, type NativeTunBatchHandler, type NativeTunHandle, type NativeTunInfo } from "./native.ts";

export { nativeSyscallFailure, syscallName };
export type { NativeTunBatchHandler as TunBatchHandler, NativeTunInfo as TunHandleInfo };

/** One TUN interface; every method is synchronous and a failed syscall throws an Error with errno/syscallId. */
export class TunHandle {
  private readonly native: NativeTunHandle = new (addon().NativeTun)();

  /**
   * TUNSETIFF with IFF_TUN | IFF_NO_PI; "" lets the kernel pick tun%d. Returns the actual name.
   * offload: IFF_VNET_HDR + TUNSETOFFLOAD(CSUM | TSO4 | TSO6), off if the kernel refuses (info().offloadErrno).
   */
  open(name: string, offload: boolean): string {
    return this.native.open(name, offload);
  }

  setMtu(mtu: number): void {
    this.native.setMtu(mtu);
  }

  setAddress(address: number, prefixLength: number): void {
    this.native.setAddress(address, prefixLength);
  }

  setUp(up: boolean): void {
    this.native.setUp(up);
  }

  info(): NativeTunInfo {
    return this.native.info();
  }

  /** Starts the reader thread; returns each slot's [packets, lengths] views (valid during onBatch only). */
  start(onBatch: NativeTunBatchHandler): [Uint8Array, Uint32Array][] {
    return this.native.start(onBatch);
  }

  /** false: the kernel dropped the packet. */
  write(packet: Uint8Array): boolean {
    return this.native.write(packet);
  }

  /** Packets written (the rest were dropped); their total bytes go to writtenBytes[0]. */
  writeBatch(buffer: Uint8Array, lengths: Uint32Array | Uint16Array, count: number, writtenBytes: Float64Array): number {
    return this.native.writeBatch(buffer, lengths, count, writtenBytes);
  }

  /** Idempotent: joins the reader thread, closes the descriptor. */
  close(): void {
    this.native.close();
  }

  /** Hands back a slot onBatch kept (it returned true). */
  recycle(slot: number): void {
    this.native.recycle(slot);
  }
}

/** addon/gso.h SegmentTcp on a vnet-framed packet: the segment count, or a negative GsoError (see lib/tun/offload.ts). */
export function segmentTcpNative(input: Uint8Array, out: Uint8Array, lengths: Uint32Array): number {
  return addon().segmentTcp(input, out, lengths);
}
