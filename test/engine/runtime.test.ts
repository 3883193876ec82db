/**
 * Model folders, manifests, tokenizer and the onnxruntime-node StepModel: device and variant choice, the
 * WebGPU provider (through SwiftShader in a child process) against the CPU, external data.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Tokenizer } from '@huggingface/tokenizers';
import { writeStepGraph } from '../../engine/graph/stepGraphBuilder';
import type { AttentionLowering } from '../../engine/graph/stepContract';
import { MANIFEST_FILE, ManifestError, readManifest, writeManifest, type GraphVariant, type ModelManifest } from '../../engine/model/manifest';
import { SYNTHETIC_TOKENS, SyntheticWeights, syntheticArchitecture, syntheticTokenizerJson, writeSyntheticModel } from '../../engine/model/synthetic';
import { autoGpuOrder, rankVariants } from '../../engine/runtime/executionProviders';
import { loadStepModel } from '../../engine/runtime/onnxStepModel';
import { argmaxRows, maxAbsDiff, stepFeeds, temporaryDir, type StepCall } from './graphTestSupport';

const run = promisify(execFile);

describe('model folder and manifest', () => {
  let dir: string;
  let manifest: ModelManifest;

  before(async () => {
    dir = temporaryDir('folder');
    manifest = await writeSyntheticModel(dir, { preset: 'tiny-llada', seed: 11 });
  });

  it('writes every default variant, the tokenizer and a manifest that reads back equal', () => {
    for (const v of manifest.variants) assert.ok(fs.existsSync(path.join(dir, v.file)), v.file);
    assert.ok(fs.existsSync(path.join(dir, manifest.tokenizer)));
    assert.deepEqual(readManifest(dir), manifest);
    assert.equal(manifest.architecture.family, 'llada');
    assert.deepEqual(manifest.tokens, SYNTHETIC_TOKENS);
  });

  it('reports every problem of a broken manifest at once, naming the file', () => {
    const broken = temporaryDir('broken');
    const bad = {
      ...manifest,
      format: 'other',
      tokens: { ...manifest.tokens, mask: 99999 },
      variants: [{ ...manifest.variants[0], file: '../escape.onnx', attention: 'flash' }, { ...manifest.variants[1], file: 'absent.onnx' }],
      decoding: { stepz: 3 },
    };
    fs.writeFileSync(path.join(broken, MANIFEST_FILE), JSON.stringify(bad));
    fs.writeFileSync(path.join(broken, 'tokenizer.json'), '{}');
    assert.throws(
      () => readManifest(broken),
      (error: unknown) => {
        assert.ok(error instanceof ManifestError);
        assert.ok(error.message.includes(path.join(broken, MANIFEST_FILE)));
        for (const expected of ['format must be', 'tokens.mask', 'variants[0].file', 'variants[0].attention', 'absent.onnx is missing', 'decoding.stepz']) {
          assert.ok(error.problems.some((p) => p.includes(expected)), `reports ${expected}: ${error.problems.join(' | ')}`);
        }
        return true;
      },
    );
    assert.throws(() => readManifest(temporaryDir('empty')), /cannot read it/);
    assert.throws(() => writeManifest(broken, bad as unknown as ModelManifest), ManifestError);
  });
});

describe('synthetic tokenizer', () => {
  const vocabSize = 320;
  const tokenizer = new Tokenizer(JSON.parse(syntheticTokenizerJson(vocabSize)), {});

  it('round-trips text, including bytes beyond ASCII', () => {
    for (const text of ['def add(a, b):\n    return a + b\n', 'naïve — 変換 ✓', '  \t\n']) {
      const ids = tokenizer.encode(text, { add_special_tokens: false }).ids;
      assert.ok(ids.every((id) => id >= 0 && id < vocabSize));
      assert.equal(tokenizer.decode(ids), text);
    }
  });

  it('encodes the special tokens as single ids', () => {
    const ids = tokenizer.encode('x<|mask|><|endoftext|><|pad|>', { add_special_tokens: false }).ids;
    assert.deepEqual(ids.slice(-3), [SYNTHETIC_TOKENS.mask, SYNTHETIC_TOKENS.eos[0], SYNTHETIC_TOKENS.pad]);
  });

  it('gives every id the model can produce a non-empty text', () => {
    for (let id = 0; id < vocabSize; id++) {
      if (id === SYNTHETIC_TOKENS.mask || SYNTHETIC_TOKENS.eos.includes(id) || id === SYNTHETIC_TOKENS.pad) continue;
      assert.ok(tokenizer.decode([id]).length > 0, `id ${id}`);
    }
  });
});

describe('synthetic weights', () => {
  it('are reproducible per seed and independent of read order', async () => {
    const arch = syntheticArchitecture('tiny-dream');
    const a = new SyntheticWeights(arch, 5);
    const b = new SyntheticWeights(arch, 5);
    const name = 'model.layers.1.mlp.up_proj.weight';
    await b.read('model.embed_tokens.weight');
    assert.deepEqual(await a.read(name), await b.read(name));
    assert.notDeepEqual(await a.read(name), await new SyntheticWeights(arch, 6).read(name));
  });

  it('make a decisive model: masked positions get different, confident predictions', async () => {
    const dir = temporaryDir('decisive');
    const manifest = await writeSyntheticModel(dir, { preset: 'tiny-dream', seed: 1 });
    const { model } = await loadStepModel(dir, manifest, { device: 'cpu' });
    const prefix = [100, 101, 102, 32, 102, 40, 120, 41, 58, 10]; // "def f(x):\n"
    const masks = 16;
    const ids = [...prefix, ...new Array(masks).fill(SYNTHETIC_TOKENS.mask)];
    const read = Array.from({ length: masks }, (_, i) => prefix.length + i);
    const result = await model.run(stepFeeds(model, { ids, positions: ids.map((_, i) => i), read }));
    assert.equal(result.predictions.kind, 'logits');
    if (result.predictions.kind !== 'logits') return;
    const { logits, vocabSize } = result.predictions;
    const tokens = argmaxRows(logits, masks, vocabSize);
    const topProbabilities = tokens.map((token, r) => {
      const row = logits.subarray(r * vocabSize, (r + 1) * vocabSize);
      const max = row[token];
      return 1 / row.reduce((sum, v) => sum + Math.exp(v - max), 0);
    });
    // RoPE only sees relative positions, so inside a run of masks neighbours see alike contexts and often
    // agree; the prefix and the canvas ends break the symmetry.
    assert.ok(new Set(tokens).size >= masks / 4, `distinct predictions: ${tokens}`);
    const sorted = [...topProbabilities].sort((x, y) => x - y);
    assert.ok(sorted[masks / 2] > 0.3, `median top probability ${sorted[masks / 2]}`);
    await model.release();
  });
});

describe('loadStepModel (onnxruntime-node)', () => {
  let dir: string;
  let manifest: ModelManifest;

  before(async () => {
    dir = temporaryDir('runtime');
    manifest = await writeSyntheticModel(dir, { preset: 'tiny-dream', seed: 2 });
  });

  it('ranks variants per device: CPU fp32 logits (hybrid, then gqa attention), GPUs fp16 stats with decomposed attention', () => {
    const variant = (attention: AttentionLowering, cacheDtype: 'float32' | 'float16', head: 'logits' | 'stats', devices?: GraphVariant['devices']): GraphVariant => ({
      file: `${attention}-${cacheDtype}-${head}`, precision: cacheDtype === 'float16' ? 'fp16' : 'fp32', cacheDtype, attention, head,
      ...(head === 'stats' ? { topK: 8 } : {}), ...(devices ? { devices } : {}),
    });
    const variants = [
      variant('decomposed', 'float16', 'stats'),
      variant('gqa', 'float16', 'stats'),
      variant('decomposed', 'float32', 'logits'),
      variant('gqa', 'float32', 'logits', ['cpu']),
      variant('hybrid', 'float32', 'logits'),
    ];
    const files = (device: Parameters<typeof rankVariants>[1]) => rankVariants(variants, device).map((v) => v.file);
    assert.deepEqual(files('cpu'), ['hybrid-float32-logits', 'gqa-float32-logits', 'decomposed-float32-logits', 'gqa-float16-stats', 'decomposed-float16-stats']);
    assert.deepEqual(files('webgpu'), ['decomposed-float16-stats', 'decomposed-float32-logits'], 'WebGPU has no causal=0 GroupQueryAttention, which hybrid runs too');
    assert.deepEqual(files('cuda'), ['decomposed-float16-stats', 'gqa-float16-stats', 'decomposed-float32-logits', 'hybrid-float32-logits']);
  });

  it('loads the CPU variant and runs it; an explicit variant is honoured', async () => {
    const loaded = await loadStepModel(dir, manifest, { device: 'cpu' });
    assert.equal(loaded.device, 'cpu');
    assert.equal(loaded.variant.attention, 'gqa');
    assert.equal(loaded.fallbackReason, undefined);
    const explicit = await loadStepModel(dir, manifest, { device: 'cpu', variant: 'step.fp32.float32.decomposed.logits.onnx' });
    assert.equal(explicit.variant.attention, 'decomposed');
    const call: StepCall = { ids: [5, 257, 257, 9], positions: [0, 1, 2, 3], read: [0, 1, 2] };
    const a = await loaded.model.run(stepFeeds(loaded.model, call));
    const b = await explicit.model.run(stepFeeds(explicit.model, call));
    assert.ok(a.predictions.kind === 'logits' && b.predictions.kind === 'logits');
    assert.equal(a.predictions.logits.length, 3 * manifest.architecture.vocabSize);
    assert.ok(maxAbsDiff(a.predictions.logits, b.predictions.logits) < 1e-4);
    await loaded.model.release();
    await explicit.model.release();
  });

  it('auto uses a GPU, or the CPU with the reason for each GPU provider it skipped', async () => {
    const loaded = await loadStepModel(dir, manifest, { device: 'auto' });
    if (loaded.device === 'cpu') {
      assert.ok(loaded.fallbackReason, 'a CPU fallback says why');
      for (const gpu of autoGpuOrder()) assert.ok(loaded.fallbackReason.includes(`${gpu}:`), gpu);
    } else {
      assert.notEqual(loaded.device, 'cpu');
    }
    await loaded.model.release();
  });

  it('names the problem when a device or variant cannot be used', async () => {
    const foreign = process.platform === 'win32' ? 'coreml' : 'dml';
    await assert.rejects(loadStepModel(dir, manifest, { device: foreign }), new RegExp(`no ${foreign} execution provider`));
    await assert.rejects(loadStepModel(dir, manifest, { device: 'cpu', variant: 'missing.onnx' }), /has no variant missing\.onnx/);
    // A stats graph announced as a logits graph fails the contract check, naming the missing output.
    const mislabelled = { ...manifest, variants: [{ ...manifest.variants[1], head: 'logits' as const, devices: undefined }] };
    await assert.rejects(loadStepModel(dir, mislabelled, { device: 'cpu' }), /missing output logits/);
  });

  it('reads weights from external data identically to inline weights', async () => {
    const arch = syntheticArchitecture('tiny-dream');
    const weights = new SyntheticWeights(arch, 4);
    const externalDir = temporaryDir('external');
    const options = { precision: 'fp32', cacheDtype: 'float32', attention: 'gqa', head: 'logits', topK: 0 } as const;
    await writeStepGraph(arch, weights, options, path.join(externalDir, 'inline.onnx'));
    await writeStepGraph(arch, weights, options, path.join(externalDir, 'external.onnx'), { externalData: 'always' });
    const graphBytes = fs.statSync(path.join(externalDir, 'external.onnx')).size;
    const dataBytes = fs.statSync(path.join(externalDir, 'external.onnx_data')).size;
    assert.ok(graphBytes < 100_000 && dataBytes > 4 * 300_000, `graph ${graphBytes} B, data ${dataBytes} B`);
    assert.ok(!fs.existsSync(path.join(externalDir, 'inline.onnx_data')));
    const variants: GraphVariant[] = ['inline.onnx', 'external.onnx'].map((file) => ({ file, ...options }));
    const folderManifest = { ...manifest, variants };
    const call: StepCall = { ids: [7, 257, 99, 257, 3], positions: [0, 4, 1, 3, 2], read: [4, 1] };
    const outputs = [];
    for (const file of ['inline.onnx', 'external.onnx']) {
      const { model } = await loadStepModel(externalDir, folderManifest, { device: 'cpu', variant: file });
      const result = await model.run(stepFeeds(model, call));
      outputs.push(result.predictions.kind === 'logits' ? [...result.predictions.logits] : []);
      await model.release();
    }
    assert.deepEqual(outputs[0], outputs[1]);
  });
});

describe('WebGPU provider through SwiftShader', function () {
  it('gives the CPU provider\'s predictions and K/V, full and cached, for both heads', async function () {
    const dir = temporaryDir('webgpu');
    const logitsVariant = 'step.fp32.float32.decomposed.logits.onnx';
    await writeSyntheticModel(dir, {
      preset: 'tiny-dream',
      seed: 9,
      variants: [
        { precision: 'fp32', cacheDtype: 'float32', attention: 'gqa', head: 'logits', topK: 0 },
        // Ranked first on WebGPU; SwiftShader has no shader-f16, so the loader must move on to fp32.
        { precision: 'fp16', cacheDtype: 'float16', attention: 'decomposed', head: 'stats', topK: 8 },
        { precision: 'fp32', cacheDtype: 'float32', attention: 'decomposed', head: 'stats', topK: 8 },
        { precision: 'fp32', cacheDtype: 'float32', attention: 'decomposed', head: 'logits', topK: 0 },
      ],
    });
    // A child process: the Vulkan driver is chosen once per process, before its first WebGPU session.
    const probe = path.join(__dirname, 'runtimeWebGpuProbe.ts');
    const { stdout } = await run(process.execPath, ['-r', 'tsx/cjs', probe, dir, logitsVariant], {
      timeout: 120_000,
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? os.tmpdir() },
    });
    const report = JSON.parse(stdout.trim().split('\n').pop()!);
    if (report.adapterUnavailable) {
      // Only when no WebGPU adapter can be created at all (.ci/run installs chromium for SwiftShader).
      console.warn(`      skipped: no WebGPU adapter: ${report.adapterUnavailable}`);
      this.skip();
    }
    assert.ok(report.comparisons, report.error);
    // GroupQueryAttention is never chosen on WebGPU; an adapter without fp16 shaders falls back to fp32.
    assert.ok(report.chosen.includes('.decomposed.stats8'), report.chosen);
    if (report.chosen.includes('float32')) assert.match(report.skippedVariants.join(' '), /float16.*requires f16/);

    const vocab = 320;
    for (const { variant, webgpu, cpu } of report.comparisons) {
      // fp32 on SwiftShader differs from the CPU by reordered float sums only (observed ~1e-5); fp16 (a
      // real GPU) by rounding.
      const tolerance = variant.includes('float16') ? 0.1 : 1e-3;
      for (const pass of ['full', 'cached'] as const) {
        const [g, c] = [webgpu[pass], cpu[pass]];
        if (c.kind === 'logits') {
          assert.ok(maxAbsDiff(g.logits, c.logits) < tolerance, `${variant} ${pass} logits`);
          const rows = c.logits.length / vocab;
          const gpuTokens = argmaxRows(Float32Array.from(g.logits), rows, vocab);
          const cpuTokens = argmaxRows(Float32Array.from(c.logits), rows, vocab);
          for (let r = 0; r < rows; r++) {
            // Tokens must agree wherever the two best logits are further apart than the allowed error.
            const sorted = c.logits.slice(r * vocab, (r + 1) * vocab).sort((a: number, b: number) => b - a);
            if (sorted[0] - sorted[1] > 2 * tolerance) assert.equal(gpuTokens[r], cpuTokens[r], `${variant} ${pass} row ${r}`);
          }
        } else {
          assert.ok(maxAbsDiff(g.topProbs, c.topProbs) < tolerance, `${variant} ${pass} top probabilities`);
          assert.ok(maxAbsDiff(g.entropy, c.entropy) < tolerance, `${variant} ${pass} entropy`);
          for (let i = 0; i < c.topIds.length; i += c.k) {
            // The most likely token must agree wherever it leads the runner-up by more than the error.
            if (c.topProbs[i] - c.topProbs[i + 1] > 2 * tolerance) assert.equal(g.topIds[i], c.topIds[i], `${variant} ${pass} top id`);
          }
        }
      }
      assert.ok(maxAbsDiff(webgpu.newKeys, cpu.newKeys) < tolerance, `${variant} new keys`);
    }
  });
});
