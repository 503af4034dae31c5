// fnv.mjs - 64-bit FNV-1a over a sequence of token ids, each as 4 little-endian bytes.
// The C test computes the same hash (tests/tokenizer/test_tokenizer_corpus.c).
export function fnv64(ids) {
    let h = 0xcbf29ce484222325n;
    const prime = 0x100000001b3n, mask = 0xffffffffffffffffn;
    for (const id of ids) {
        for (let k = 0; k < 4; k++) {
            h ^= BigInt((id >>> (8 * k)) & 0xff);
            h = (h * prime) & mask;
        }
    }
    return h.toString(16).padStart(16, '0');
}
