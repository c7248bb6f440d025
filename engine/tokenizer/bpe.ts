/**
 * Byte-pair merging for one pre-token. CLIP marks the end of a word by fusing `</w>` onto its
 * last symbol, so "cat" and the "cat" inside "cats" are different tokens.
 */

export const END_OF_WORD = '</w>';

export type MergePair = readonly [string, string];

export class BpeMerger {
  /** Keyed "left right": symbols never contain a space (byte 0x20 is spelled 'Ġ'). */
  private readonly ranks = new Map<string, number>();

  constructor(merges: readonly MergePair[]) {
    merges.forEach(([left, right], rank) => {
      // A repeated pair keeps its later rank, as a Python dict built from the list would.
      this.ranks.set(`${left} ${right}`, rank);
    });
  }

  get mergeCount(): number {
    return this.ranks.size;
  }

  /** Splits a byte-symbol word into its final BPE tokens (the last one ends in `</w>`). */
  apply(word: string): string[] {
    let symbols = word.split('');
    if (symbols.length === 0) return [];
    symbols[symbols.length - 1] += END_OF_WORD;

    while (symbols.length > 1) {
      let bestRank = Infinity;
      let bestIndex = -1;
      for (let i = 0; i < symbols.length - 1; i++) {
        const rank = this.ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          bestIndex = i;
        }
      }
      if (bestIndex < 0) break;

      // Merge every non-overlapping occurrence of the winning pair, left to right.
      const left = symbols[bestIndex];
      const right = symbols[bestIndex + 1];
      const merged: string[] = symbols.slice(0, bestIndex);
      for (let i = bestIndex; i < symbols.length; ) {
        if (i < symbols.length - 1 && symbols[i] === left && symbols[i + 1] === right) {
          merged.push(left + right);
          i += 2;
        } else {
          merged.push(symbols[i]);
          i += 1;
        }
      }
      symbols = merged;
    }
    return symbols;
  }
}
