/**
 * A source hash of a checkpoint folder that is cheap enough to compute on every start: sha256 over the
 * small files whole, and for each safetensors file its name, size, header and 64 evenly spaced 4 KiB samples
 * of its data. Reading 15 GB to hash it would take minutes; any re-trained or re-saved checkpoint changes its
 * header or nearly every sample, so this identifies the weights without reading them all.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsCheckpoint } from './safetensors';

/** Files besides the weights that change what a conversion produces. */
const SMALL_FILES = [
  'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json',
  'added_tokens.json', 'vocab.json', 'merges.txt',
];
const SAMPLES = 64;
const SAMPLE_BYTES = 4096;

export async function checkpointFingerprint(dir: string): Promise<string> {
  const hash = createHash('sha256');
  for (const name of SMALL_FILES) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) continue;
    hash.update(`${name}\0`);
    hash.update(fs.readFileSync(file));
  }
  for (const file of SafetensorsCheckpoint.listFiles(dir)) {
    const handle = await fs.promises.open(file, 'r');
    try {
      const size = (await handle.stat()).size;
      hash.update(`${path.basename(file)}\0${size}\0`);
      const header = Buffer.alloc(Math.min(size, 8));
      await handle.read(header, 0, header.length, 0);
      const headerLength = size >= 8 ? Number(header.readBigUInt64LE(0)) : 0;
      const spans: [number, number][] = [[0, Math.min(size, 8 + headerLength)]];
      for (let i = 0; i < SAMPLES; i++) {
        const at = Math.floor(((size - SAMPLE_BYTES) * i) / (SAMPLES - 1));
        if (at > 0) spans.push([at, Math.min(size, at + SAMPLE_BYTES)]);
      }
      for (const [start, end] of spans) {
        const bytes = Buffer.alloc(end - start);
        await handle.read(bytes, 0, bytes.length, start);
        hash.update(bytes);
      }
    } finally {
      await handle.close();
    }
  }
  return hash.digest('hex');
}
