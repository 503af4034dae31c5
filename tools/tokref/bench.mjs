// bench.mjs - the JavaScript side of bench/tokenize: MB/s of @huggingface/transformers on the
// same inputs as the C benchmark, best of N runs, printed as "key value" lines.
// Usage: node tools/tokref/bench.mjs [SHARED_DIR] [RUNS]
import { PreTrainedTokenizer, LlamaTokenizer } from '@huggingface/transformers';
import fs from 'fs';
import path from 'path';
import { fileURLToPath } from 'url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const shared = path.resolve(process.argv[2] || path.join(root, '..', 'shared'));
const runs = Math.max(1, parseInt(process.argv[3] || '3', 10));

// CPU seconds of the process (user + system), as the C side counts its thread's CPU time
const now = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
const readJson = (p) => JSON.parse(fs.readFileSync(p, 'utf8'));
const loaders = {
    smollm2: () => new PreTrainedTokenizer(
        readJson(path.join(shared, 'models', 'smollm2-135m', 'tokenizer.json')), {}),
    stories260k: () => new LlamaTokenizer(
        readJson(path.join(root, 'models', 'stories260k', 'tokenizer.json')),
        readJson(path.join(root, 'models', 'stories260k', 'tokenizer_config.json'))),
};

// the same inputs as bench/tokenize.c
const rows = fs.readFileSync(path.join(shared, 'data', 'labeled.jsonl'), 'utf8').split('\n')
    .filter((l) => l.length > 0).map((l) => JSON.parse(l));
const texts = rows.map((r) => r.text);
const bytesOf = (s) => Buffer.byteLength(s, 'utf8');
const labeledBytes = texts.reduce((a, s) => a + bytesOf(s), 0);
const doc = rows.filter((r) => r.lang !== 'multi').map((r) => r.text).join('\n\n');
let x = 12345, nospace = '';
const letters = [];
for (let i = 0; i < (1 << 20); i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    letters.push(String.fromCharCode(97 + ((x >>> 16) % 26)));
}
nospace = letters.join('');
const same = 'a'.repeat(1 << 20);

function best(fn) {
    let b = Infinity;
    for (let r = 0; r < runs; r++) {
        const t0 = now();
        fn();
        b = Math.min(b, now() - t0);
    }
    return b;
}

for (const [name, load] of Object.entries(loaders)) {
    const loadS = best(load);
    {
        const cold = load(); // a fresh tokenizer's first pass, as the C side measures it
        const t0 = now();
        for (const s of texts)
            cold.encode(s);
        console.log(`${name}.cold ${(labeledBytes / 1e6 / (now() - t0)).toFixed(3)}`);
    }
    const tok = load();
    const figures = {
        labeled: [labeledBytes, () => { for (const s of texts) tok.encode(s); }],
        document: [bytesOf(doc), () => tok.encode(doc)],
        nospace: [nospace.length, () => tok.encode(nospace)],
        same: [same.length, () => tok.encode(same)],
    };
    for (const [key, [bytes, fn]] of Object.entries(figures))
        console.log(`${name}.${key} ${(bytes / 1e6 / best(fn)).toFixed(3)}`);
    console.log(`${name}.load_ms ${(loadS * 1e3).toFixed(1)}`);
}
