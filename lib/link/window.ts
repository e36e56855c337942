// Sliding window over 64-bit sequence numbers (RFC 6479 style: a ring of 32-bit words, O(1) per
// check, no shifting): answers "first time seen?" for the last WINDOW_BITS numbers below the highest.
// The link uses it to drop a data message that arrived on both paths around a switch; the security
// layer uses it as the anti-replay window after authentication. Anything older than the window is
// refused (counted as "old" by the caller): a network would have dropped it long ago too.
export const WINDOW_BITS = 4096;
const WORD_BITS = 32;
const WORDS = WINDOW_BITS / WORD_BITS;
const WORD_MASK = BigInt(WORDS - 1);

export type WindowVerdict = "new" | "duplicate" | "old";

export class SequenceWindow {
  private readonly words = new Uint32Array(WORDS);
  private highest = 0n;

  reset(): void {
    this.words.fill(0);
    this.highest = 0n;
  }

  /** Checks `seq` (>= 1) and marks it seen if new. */
  check(seq: bigint): WindowVerdict {
    if (seq <= 0n) return "old";
    if (seq > this.highest) {
      const fromWord = this.highest >> 5n;
      const toWord = seq >> 5n;
      // Clear the words the window slides past (at most the whole ring).
      const clear = toWord - fromWord > BigInt(WORDS) ? BigInt(WORDS) : toWord - fromWord;
      for (let i = 1n; i <= clear; i++) this.words[Number((fromWord + i) & WORD_MASK)] = 0;
      this.highest = seq;
    } else if (this.highest - seq >= BigInt(WINDOW_BITS - WORD_BITS)) {
      return "old";
    }
    const word = Number((seq >> 5n) & WORD_MASK);
    const bit = 1 << Number(seq & 31n);
    if ((this.words[word]! & bit) !== 0) return "duplicate";
    this.words[word] = this.words[word]! | bit;
    return "new";
  }
}
