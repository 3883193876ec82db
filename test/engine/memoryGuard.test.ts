import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readManifest } from '../../engine/model/manifest';
import { memoryNeed, variantBytes } from '../../engine/store/memoryEstimate';
import { writeSyntheticModel } from '../../engine/model/synthetic';
import { ErrorCodes, type SetupErrorData } from '../../common/protocol';
import { Engine } from '../../engine/service/engine';
import type { EngineError } from '../../engine/service/errors';
import { checkMemory, type MemoryFacts } from '../../engine/service/memoryGuard';
import { temporaryDir } from './graphTestSupport';

const PLENTY = 64e9;
const nvidia = (free: number): MemoryFacts['gpus'] => [{ name: 'NVIDIA Test', memoryBytes: free, freeMemoryBytes: free, source: 'nvidia-smi' }];

describe('memory guard', function () {
  this.timeout(120_000);
  let tmp: string;
  let dir: string;
  before(async () => {
    tmp = temporaryDir('guard');
    dir = path.join(tmp, 'model');
    await writeSyntheticModel(dir, { preset: 'tiny-dream', seed: 1, name: 'guarded' });
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('sizes a model from its graph on disk, its K/V cache and its working memory', () => {
    const manifest = readManifest(dir);
    const variant = manifest.variants[0];
    const need = memoryNeed(manifest.architecture, variant, { weightBytes: variantBytes(dir, variant) });
    assert.ok(need.weightBytes >= fs.statSync(path.join(dir, variant.file)).size);
    assert.equal(need.totalBytes, need.weightBytes + need.kvCacheBytes + need.activationBytes);
    assert.equal(need.canvasTokens, Math.min(2048, manifest.architecture.maxPositions));
  });

  it('lets a model load where it fits, and does not guard a device whose memory cannot be read', () => {
    const manifest = readManifest(dir);
    assert.deepEqual(checkMemory(dir, manifest, 'auto', { availableMemoryBytes: PLENTY, gpus: nvidia(PLENTY) }), { skip: {} });
    assert.deepEqual(checkMemory(dir, manifest, 'webgpu', { availableMemoryBytes: 1, gpus: [] }), { skip: {} });
  });

  it('refuses a device asked for by name that lacks the memory, with the numbers and what to do', () => {
    const manifest = readManifest(dir);
    const cpu = checkMemory(dir, manifest, 'cpu', { availableMemoryBytes: 1000, gpus: [] });
    assert.match(cpu.refuse!.message, /^Not enough memory for guarded on cpu: it needs about \d+\.\d GB \(weights \d+\.\d GB in fp32, K\/V cache .* for a \d+-token canvas\), and 0\.0 GB is free now\. Try to close/);
    assert.deepEqual({ ...cpu.refuse!.data, neededBytes: undefined }, { reason: 'notEnoughMemory', device: 'cpu', availableBytes: 1000, neededBytes: undefined });
    const gpu = checkMemory(dir, manifest, 'cuda', { availableMemoryBytes: PLENTY, gpus: nvidia(1000) });
    assert.match(gpu.refuse!.message, /Not enough cuda GPU memory .* Try to run it on the CPU \(set dlm\.device to "cpu"; 64\.0 GB of memory is free\)/);
  });

  it('auto skips the GPUs a model does not fit, saying why, and uses the CPU', () => {
    const manifest = readManifest(dir);
    const verdict = checkMemory(dir, manifest, 'auto', { availableMemoryBytes: PLENTY, gpus: nvidia(1000) });
    assert.equal(verdict.refuse, undefined);
    for (const reason of Object.values(verdict.skip)) assert.match(reason!, /guarded needs about .*; 0\.0 GB is free/);
    assert.ok(Object.keys(verdict.skip).length > 0 && !('cpu' in verdict.skip));
  });

  it('the engine refuses the load before starting a session, with the reason as data', async () => {
    const engine = new Engine({ cacheDir: tmp, log: () => undefined, memoryFacts: async () => ({ availableMemoryBytes: 1000, gpus: [] }) });
    try {
      await assert.rejects(engine.loadModel({ model: dir, device: 'cpu' }), (e: EngineError) => {
        assert.equal(e.code, ErrorCodes.ModelLoadFailed);
        assert.equal((e.data as SetupErrorData).reason, 'notEnoughMemory');
        return true;
      });
      assert.deepEqual(engine.status().models, []);
    } finally {
      await engine.shutdown();
    }
  });
});
