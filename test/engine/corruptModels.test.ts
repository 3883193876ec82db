/**
 * Corrupt model folders and checkpoints, loaded as the engine loads them (real onnxruntime): weights overwritten
 * with zeros or NaN are refused at load by the self-check (engine/runtime/weightSelfCheck.ts), naming the
 * folder, and every broken file is named in the error, never only a parser's position.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import path from 'node:path';
import { writeSyntheticModel } from '../../engine/model/synthetic';
import { resolveModel } from '../../engine/store/modelManager';
import { ErrorCodes } from '../../common/protocol';
import { Engine } from '../../engine/service/engine';
import type { EngineError } from '../../engine/service/errors';
import { writeFixtureCheckpoint } from './convertFixtures';
import { temporaryDir } from './graphTestSupport';
import { FP32_GQA } from './reuseTestSupport';

const FP16_STATS = { precision: 'fp16', cacheDtype: 'float16', attention: 'decomposed', head: 'stats', topK: 32 } as const;
const BUILTIN = path.join(__dirname, '..', '..', 'dist', 'models', 'builtin');

/** Overwrites the weights a folder's graphs keep in external data with `fill`, repeated. */
function overwriteWeights(dir: string, fill: Buffer): void {
  for (const name of fs.readdirSync(dir).filter((f) => f.endsWith('.onnx_data'))) {
    const file = path.join(dir, name);
    const bytes = fs.readFileSync(file);
    for (let i = 0; i + fill.length <= bytes.length; i += fill.length) fill.copy(bytes, i);
    fs.writeFileSync(file, bytes);
  }
}

describe('corrupt model folders and checkpoints', function () {
  this.timeout(120_000);
  let tmp: string;
  let engine: Engine;
  const logs: string[] = [];

  before(() => {
    tmp = temporaryDir('corrupt');
    engine = new Engine({ cacheDir: path.join(tmp, 'cache'), log: (_level, message) => logs.push(message) });
  });
  after(async () => {
    await engine.shutdown();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function loadError(dir: string): Promise<EngineError> {
    try {
      await engine.loadModel({ model: dir, device: 'cpu' });
    } catch (error) {
      return error as EngineError;
    }
    assert.fail(`${dir} loaded`);
  }

  it('refuses weights overwritten with zeros or NaN at load, naming the folder, for both prediction heads', async () => {
    const zeroFloat32 = Buffer.alloc(4);
    const nanFloat32 = Buffer.from(new Float32Array([Number.NaN]).buffer);
    const nanFloat16 = Buffer.from([0x00, 0x7e, 0x00, 0x7e]);
    const cases = [
      { name: 'zeros-logits', variant: FP32_GQA, fill: zeroFloat32, problem: /every token the same score/ },
      { name: 'nan-logits', variant: FP32_GQA, fill: nanFloat32, problem: /NaN logits/ },
      { name: 'zeros-stats', variant: FP16_STATS, fill: zeroFloat32, problem: /every token the same probability/ },
      { name: 'nan-stats', variant: FP16_STATS, fill: nanFloat16, problem: /NaN probabilities/ },
    ];
    for (const c of cases) {
      const dir = path.join(tmp, c.name);
      await writeSyntheticModel(dir, { preset: 'tiny-dream', seed: 3, variants: [c.variant], externalData: 'always' });
      overwriteWeights(dir, c.fill);
      const error = await loadError(dir);
      assert.equal(error.code, ErrorCodes.ModelLoadFailed, c.name);
      assert.ok(error.message.includes(`the weights in ${dir} are corrupt`), `${c.name}: ${error.message}`);
      assert.match(error.message, c.problem, c.name);
    }
    // The intact folder loads and fills.
    const intact = path.join(tmp, 'intact');
    await writeSyntheticModel(intact, { preset: 'tiny-dream', seed: 3, variants: [FP32_GQA], externalData: 'always' });
    const info = await engine.loadModel({ model: intact, device: 'cpu' });
    assert.equal((await engine.infill({ modelId: info.modelId, prefix: 'def f():\n    ', suffix: '\n', length: 4 }).result).stats.genTokens, 4);
  });

  it('refuses weights cut short, naming the folder and the tensor', async () => {
    const dir = path.join(tmp, 'truncated');
    await writeSyntheticModel(dir, { preset: 'tiny-dream', seed: 3, variants: [FP32_GQA], externalData: 'always' });
    const data = fs.readdirSync(dir).find((f) => f.endsWith('_data'))!;
    fs.truncateSync(path.join(dir, data), Math.floor(fs.statSync(path.join(dir, data)).size / 2));
    const error = await loadError(dir);
    assert.equal(error.code, ErrorCodes.ModelLoadFailed);
    assert.ok(error.message.includes(`(${dir})`), error.message);
    // Which tensor past the cut onnxruntime reads first varies (a layer's weight, the head).
    assert.match(error.message, /Deserialize tensor (model\.layers\.\d+\.|lm_head\.)\S+ failed.* out of bounds/);
  });

  it('names the broken file of a model folder: its manifest, its tokenizer', async () => {
    const manifestCut = path.join(tmp, 'manifest-cut');
    await writeSyntheticModel(manifestCut, { preset: 'tiny-dream', seed: 3, variants: [FP32_GQA] });
    const manifestFile = path.join(manifestCut, 'dlm-model.json');
    fs.writeFileSync(manifestFile, fs.readFileSync(manifestFile, 'utf8').slice(0, 200));
    assert.ok((await loadError(manifestCut)).message.includes(manifestFile));

    const tokenizerBroken = path.join(tmp, 'tokenizer-broken');
    await writeSyntheticModel(tokenizerBroken, { preset: 'tiny-dream', seed: 3, variants: [FP32_GQA] });
    const tokenizerFile = path.join(tokenizerBroken, 'tokenizer.json');
    fs.writeFileSync(tokenizerFile, fs.readFileSync(tokenizerFile, 'utf8').slice(0, 300));
    assert.match((await loadError(tokenizerBroken)).message, new RegExp(`The tokenizer file ${tokenizerFile} is not valid JSON`));
  });

  it('names a truncated config.json of a checkpoint folder', async () => {
    const src = await writeFixtureCheckpoint(path.join(tmp, 'checkpoint'), 'dream');
    const config = path.join(src.dir, 'config.json');
    fs.writeFileSync(config, fs.readFileSync(config, 'utf8').slice(0, 200));
    await assert.rejects(resolveModel(src.dir, { cacheDir: path.join(tmp, 'cache') }), (error: Error) => {
      assert.match(error.message, new RegExp(`The checkpoint config file ${config} is not valid JSON`));
      return true;
    });
  });

  it('turns prefix reuse off with a line naming a corrupt depth-profile.json, and still fills', async () => {
    const dir = path.join(tmp, 'builtin-copy');
    fs.cpSync(BUILTIN, dir, { recursive: true });
    const profile = path.join(dir, 'depth-profile.json');
    fs.writeFileSync(profile, fs.readFileSync(profile, 'utf8').slice(0, 100));
    const info = await engine.loadModel({ model: dir, device: 'cpu' });
    const result = await engine.infill({ modelId: info.modelId, documentId: 'file:///a.py', prefix: 'def f():\n    ', suffix: '\n', length: 4, reuseMode: 'depthwise' }).result;
    assert.equal(result.stats.genTokens, 4);
    assert.ok(
      logs.some((line) => line.includes('prefix reuse is off') && line.includes(`The depth profile file ${profile} is not valid JSON`)),
      logs.join('\n'),
    );
  });
});
