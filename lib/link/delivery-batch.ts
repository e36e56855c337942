// Data the link delivers, batched for one TunDevice.writeBatch: payloads back to back in one
// preallocated buffer (no allocation per packet), bounded by DELIVERY_BATCH_PACKETS and
// DELIVERY_BATCH_BYTES, with each payload's framed flag (the message header marked it a vnet-framed
// TCP superpacket: the only payloads a TUN may take framed). Pure bookkeeping: the shell flushes when a payload does not fit, and once
// after each receive batch or ring record walk (scheduled at most once until it is taken).
export const DELIVERY_BATCH_PACKETS = 256;
export const DELIVERY_BATCH_BYTES = 1 << 20;

export class DeliveryBatch {
  /** Payloads back to back; payload i is lengths[i] bytes. */
  readonly bytes = new Uint8Array(DELIVERY_BATCH_BYTES);
  readonly lengths = new Uint32Array(DELIVERY_BATCH_PACKETS);
  /** framed[i] is 1 if payload i is a marked superpacket, else 0. */
  readonly framed = new Uint8Array(DELIVERY_BATCH_PACKETS);
  private count = 0;
  private used = 0;
  private scheduled = false;

  /** Whether a payload of `length` bytes fits behind what is batched (else: take the batch first). */
  fits(length: number): boolean {
    return this.count < DELIVERY_BATCH_PACKETS && this.used + length <= DELIVERY_BATCH_BYTES;
  }

  /** Appends a copy of `payload` (it must fit); true if a flush must be scheduled (none is yet). */
  push(payload: Uint8Array, framed: boolean): boolean {
    if (!this.fits(payload.length)) throw new Error(`assertion failed: a ${payload.length}-byte payload pushed into a full delivery batch`);
    this.bytes.set(payload, this.used);
    this.framed[this.count] = framed ? 1 : 0;
    this.lengths[this.count++] = payload.length;
    this.used += payload.length;
    if (this.scheduled) return false;
    this.scheduled = true;
    return true;
  }

  /** Empties the batch; returns how many payloads it held (their bytes stay valid until the next push). */
  take(): number {
    const count = this.count;
    this.count = 0;
    this.used = 0;
    this.scheduled = false;
    return count;
  }
}
