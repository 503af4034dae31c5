// make_reference.mjs - reference token ids for the tokenizer conformance corpus.
//
// Encodes every text of ../shared/data/labeled.jsonl and a set of hand-made hard cases with
// @huggingface/transformers (run offline on the local tokenizer.json files) for two
// tokenizers: SmolLM2-135M (byte-level BPE) and stories260k (SentencePiece-style BPE with
// byte fallback, legacy=true as its tokenizer_config.json says), and writes
//   tests/fixtures/tokenizer/hard_cases.jsonl  every hard case with its full reference ids
//   tests/fixtures/tokenizer/labeled_ids.jsonl per labeled.jsonl line: token counts and a
//                                              64-bit FNV-1a hash of the id sequence
//   tests/fixtures/tokenizer/labeled_head.jsonl full ids of the first 200 labeled lines
//
// Usage (from the repository root):
//   (cd tools/tokref && npm ci --ignore-scripts)
//   node tools/tokref/make_reference.mjs [SHARED_DIR]
import { PreTrainedTokenizer, LlamaTokenizer } from '@huggingface/transformers';
import fs from 'fs';
import path from 'path';
import { fileURLToPath } from 'url';
import { hardCases } from './hard_cases.mjs';
import { fnv64 } from './fnv.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const shared = path.resolve(process.argv[2] || path.join(root, '..', 'shared'));
const outDir = path.join(root, 'tests', 'fixtures', 'tokenizer');

// Where transformers.js is known to differ from the Rust `tokenizers` library, the reference
// follows Rust. Each difference is patched here, with the Rust behaviour it restores:
//  1. Digits: Rust splits on char::is_numeric (general categories Nd, Nl, No; see
//     tokenizers/src/pre_tokenizers/digits.rs); transformers.js uses \d, ASCII 0-9 only.
//  2. ByteLevel's regex: Rust runs it with Oniguruma, whose \s is Unicode White_Space
//     (U+0009-000D, U+0085, Zs, Zl, Zp). JavaScript's \s also matches U+FEFF and misses
//     U+0085.
//  3. Characters whose ByteLevel symbol is not in the vocabulary (SmolLM2 lacks 21 of the 256)
//     are dropped by Rust's BPE when there is no unk_token (models/bpe/model.rs,
//     merge_word); transformers.js emits an undefined id for them.
const WS = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
function rustPretokenizers(pt) {
    if (pt === null || pt === undefined)
        return;
    for (const sub of pt.tokenizers || [])
        rustPretokenizers(sub);
    const name = pt.constructor.name;
    if (name === 'DigitsPreTokenizer')
        pt.pattern = new RegExp(`[^\\p{N}]+|\\p{N}${pt.config.individual_digits ? '' : '+'}`, 'gu');
    if (name === 'ByteLevelPreTokenizer')
        pt.pattern = new RegExp(`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`, 'gu');
}

// Ids with Rust's handling of tokens missing from the vocabulary (patch 3).
function rustIds(tok, text) {
    return Array.from(tok.encode(text)).filter((id) => id !== undefined);
}

export function loadTokenizers(sharedDir) {
    const readJson = (p) => JSON.parse(fs.readFileSync(p, 'utf8'));
    const smol = new PreTrainedTokenizer(
        readJson(path.join(sharedDir, 'models', 'smollm2-135m', 'tokenizer.json')), {});
    const storiesDir = path.join(root, 'models', 'stories260k');
    const stories = new LlamaTokenizer(readJson(path.join(storiesDir, 'tokenizer.json')),
                                       readJson(path.join(storiesDir, 'tokenizer_config.json')));
    return { smol, stories };
}

// The text the JS side sees for a case given as hex bytes: decoded with U+FFFD replacement
// (WHATWG decoder: the same maximal-subpart rule as Rust's from_utf8_lossy), a leading BOM
// kept as a character.
function caseText(c) {
    if (c.hex === undefined)
        return c.text;
    return new TextDecoder('utf-8', { fatal: false, ignoreBOM: true })
        .decode(Buffer.from(c.hex, 'hex'));
}

if (process.argv[1] && process.argv[1].endsWith('make_reference.mjs')) {
    const plain = loadTokenizers(shared);         // transformers.js as published
    const { smol, stories } = loadTokenizers(shared);
    rustPretokenizers(smol.pre_tokenizer);        // patches 1 and 2
    fs.mkdirSync(outDir, { recursive: true });

    // the patched reference must still give the Rust library's own ids
    const rustRef = JSON.parse(fs.readFileSync(
        path.join(shared, 'models', 'smollm2-135m', 'tokenizer-reference.json'), 'utf8'));
    for (const r of rustRef) {
        if (JSON.stringify(rustIds(smol, r.text)) !== JSON.stringify(r.ids))
            throw new Error(`patched reference differs from Rust on ${JSON.stringify(r.text)}`);
    }

    let differ = 0;
    const hard = hardCases();
    const hardLines = hard.map((c) => {
        const t = caseText(c);
        const o = { name: c.name };
        // texts holding NUL travel as hex too: the C side's JSON reader ends strings at NUL
        if (c.hex !== undefined)
            o.hex = c.hex;
        else if (t.includes('\0'))
            o.hex = Buffer.from(t, 'utf8').toString('hex');
        else
            o.text = t;
        o.smollm2 = rustIds(smol, t);
        const js = Array.from(plain.smol.encode(t)).map((x) => (x === undefined ? null : x));
        if (JSON.stringify(js) !== JSON.stringify(o.smollm2)) {
            o.smollm2_js = js;
            differ++;
        }
        o.stories260k = Array.from(stories.encode(t));
        return JSON.stringify(o);
    });
    fs.writeFileSync(path.join(outDir, 'hard_cases.jsonl'), hardLines.join('\n') + '\n');

    const labeled = fs.readFileSync(path.join(shared, 'data', 'labeled.jsonl'), 'utf8')
        .split('\n').filter((l) => l.length > 0);
    const idLines = [], headLines = [];
    let differLabeled = 0;
    labeled.forEach((line, i) => {
        const text = JSON.parse(line).text;
        const a = rustIds(smol, text), b = Array.from(stories.encode(text));
        const js = Array.from(plain.smol.encode(text));
        differLabeled += JSON.stringify(js) !== JSON.stringify(a);
        idLines.push(JSON.stringify({ line: i, n_smollm2: a.length, h_smollm2: fnv64(a),
                                      n_stories260k: b.length, h_stories260k: fnv64(b) }));
        if (i < 200)
            headLines.push(JSON.stringify({ line: i, smollm2: a, stories260k: b }));
    });
    fs.writeFileSync(path.join(outDir, 'labeled_ids.jsonl'), idLines.join('\n') + '\n');
    fs.writeFileSync(path.join(outDir, 'labeled_head.jsonl'), headLines.join('\n') + '\n');
    console.log(`hard cases: ${hard.length} (${differ} where unpatched transformers.js differs ` +
                `for smollm2), labeled texts: ${labeled.length} (${differLabeled} differ)`);
}
