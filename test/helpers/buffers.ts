// Buffers for addon tests: memory JS owns (V8-allocated ArrayBuffers), as opposed to volume.alloc().
import { addon } from "../../lib/io/native.ts";

/** A view of `lengthBytes` over a plain (V8-allocated) ArrayBuffer, placed at a 4096-aligned address: memory JS can detach. */
export function foreignAligned(lengthBytes: number): Uint8Array {
  const backing = new Uint8Array(new ArrayBuffer(lengthBytes + 4096));
  for (let shift = 0; shift < 4096; shift += 8) {
    const view = backing.subarray(shift, shift + lengthBytes);
    if (addon().addressAlignment(view) >= 4096) return view;
  }
  throw new Error("no 4096-aligned offset in a 4096-byte window");
}
