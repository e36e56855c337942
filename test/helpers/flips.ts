// Exhaustive single-bit-flip check: how many of the 8 x length one-bit corruptions of bytes[0, length)
// does `accepts` still take? Each flip is undone before the next.
export function acceptedFlips(bytes: Uint8Array, length: number, accepts: (bytes: Uint8Array) => boolean): number {
  let accepted = 0;
  for (let byte = 0; byte < length; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      bytes[byte]! ^= 1 << bit;
      if (accepts(bytes)) accepted++;
      bytes[byte]! ^= 1 << bit;
    }
  }
  return accepted;
}
