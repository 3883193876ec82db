/**
 * Random checkpoints of real geometries (engine/bench/randomCheckpoint.ts): the real models' parameter
 * counts and tensor names, a toy-size one written, converted by the real converter and run, and the command.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CHECKPOINT_GEOMETRIES, checkpointTensors, randomCheckpointTokenizer, writeRandomCheckpoint,
} from '../../engine/bench/randomCheckpoint';
import { convertCheckpoint } from '../../engine/convert/convert';
import { detectFamily } from '../../engine/convert/families';
import { SafetensorsCheckpoint, planShards } from '../../engine/convert/safetensors';
import { bf16ToFloat32, float32ToBf16 } from '../../engine/graph/floatFormats';
import { parameterCount } from '../../engine/architecture/architecture';
import { readManifest } from '../../engine/model/manifest';
import { SyntheticWeights, normalStream } from '../../engine/model/synthetic';
import { Tokenizer } from '../../engine/model/tokenizer';
import { Engine } from '../../engine/service/engine';
import { temporaryDir } from './graphTestSupport';

const ROOT = path.join(__dirname, '..', '..');
const ENGINE = path.join(ROOT, 'dist', 'engine', 'main.js');

describe('random checkpoints of real geometries', function () {
  this.timeout(120_000);
  let tmp: string;
  beforeEach(() => (tmp = temporaryDir('random-checkpoint')));
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('have the real models\' parameter counts, tensor names and shards, and configs the converter reads back', () => {
    // Published sizes: Qwen2.5-0.5B 494,032,768 parameters (tied), Qwen2.5-7B 7,615,616,512 (untied).
    const small = CHECKPOINT_GEOMETRIES['qwen2.5-0.5b'];
    const large = CHECKPOINT_GEOMETRIES['dream-coder-7b'];
    assert.equal(parameterCount(small.architecture), 494_032_768);
    assert.equal(parameterCount(large.architecture), 7_615_616_512);
    const names = checkpointTensors(large.architecture).map((t) => t.name);
    assert.equal(names.length, 1 + 28 * 12 + 2);
    for (const name of ['model.embed_tokens.weight', 'model.layers.27.self_attn.k_proj.bias', 'model.layers.0.mlp.down_proj.weight', 'model.norm.weight', 'lm_head.weight']) {
      assert.ok(names.includes(name), name);
    }
    const kProj = checkpointTensors(large.architecture).find((t) => t.name === 'model.layers.0.self_attn.k_proj.weight')!;
    assert.deepEqual([kProj.dtype, kProj.shape], ['BF16', [512, 3584]]);
    assert.ok(!checkpointTensors(small.architecture).some((t) => t.name === 'lm_head.weight'));
    // 15.2 GB of bf16 in shards of at most 5 GB, as save_pretrained writes Dream-Coder; the 0.5B in one file.
    assert.equal(planShards(checkpointTensors(large.architecture), large.maxShardBytes).length, 4);
    assert.equal(planShards(checkpointTensors(small.architecture), small.maxShardBytes).length, 1);
    for (const geometry of [small, large]) {
      assert.deepEqual(detectFamily(geometry.config).architecture(geometry.config), geometry.architecture);
    }
  });

  it('give the tokenizer the real vocabulary size and the real added-token ids, and encode code exactly', () => {
    const file = path.join(tmp, 'tokenizer.json');
    fs.writeFileSync(file, randomCheckpointTokenizer(CHECKPOINT_GEOMETRIES['dream-coder-7b']));
    const tokenizer = Tokenizer.load(file);
    assert.equal(tokenizer.tokenId('<|endoftext|>'), 151643);
    assert.equal(tokenizer.tokenId('<|im_end|>'), 151645);
    assert.equal(tokenizer.tokenId('<|fim_middle|>'), 151660);
    assert.equal(tokenizer.tokenId('<|mask|>'), 151666);
    const code = 'def add(a, b):\n    return a + b  # ünïcode\n';
    const ids = tokenizer.encode(code);
    assert.equal(tokenizer.decode(ids), code);
    assert.ok(ids.every((id) => id < 4093), 'code encodes with the built-in BPE tokens');
    // An id the model can produce but no merge builds still decodes (to its bytes).
    assert.ok(tokenizer.decode([151000]).length > 0);
  });

  it('draws in pieces exactly what one draw gives', () => {
    const whole = normalStream(5, 0, 1)(new Float32Array(10));
    const next = normalStream(5, 0, 1);
    assert.deepEqual([...next(new Float32Array(4)), ...next(new Float32Array(4)), ...next(new Float32Array(2))], [...whole]);
  });

  it('writes a checkpoint the converter takes (int4, float32 activations), and the converted model fills code', async () => {
    const geometry = CHECKPOINT_GEOMETRIES['tiny-qwen2'];
    const src = await writeRandomCheckpoint('tiny-qwen2', path.join(tmp, 'tiny-src'), { seed: 3 });
    assert.deepEqual(fs.readdirSync(src).sort(), ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    const safetensors = await SafetensorsCheckpoint.open(src);
    try {
      assert.deepEqual(safetensors.names().sort(), checkpointTensors(geometry.architecture).map((t) => t.name).sort());
      assert.equal(safetensors.entry('model.embed_tokens.weight').dtype, 'BF16');
      const name = 'model.layers.1.mlp.up_proj.weight';
      const expected = bf16ToFloat32(float32ToBf16(await new SyntheticWeights(geometry.architecture, 3).read(name)));
      assert.deepEqual(await safetensors.readFloat32(name), expected);
    } finally {
      await safetensors.close();
    }
    await assert.rejects(writeRandomCheckpoint('tiny-qwen2', src), /already exists and is not empty/);

    const out = path.join(tmp, 'tiny-int4');
    await convertCheckpoint(src, out, { precision: 'int4', cacheDtype: 'float32' });
    const manifest = readManifest(out);
    assert.deepEqual(manifest.architecture, geometry.architecture);
    // "<M>" follows Qwen2.5's 22 added tokens; <|endoftext|> and <|im_end|> end a fill.
    assert.deepEqual(manifest.tokens, { mask: 4093 + 22, eos: [4093, 4095], pad: null, bos: null });

    const engine = new Engine({ cacheDir: tmp, log: () => {} });
    try {
      const info = await engine.loadModel({ model: out, device: 'cpu' });
      const result = await engine.infill({
        modelId: info.modelId, prefix: 'def add(a, b):\n    return ', suffix: '\n\nprint(add(1, 2))\n', length: 8,
        options: { steps: 8, temperature: 0 },
      }).result;
      // One token per step until the fill is done (random weights may end it early with an end token).
      assert.ok(result.stats.steps >= 1 && result.stats.steps <= 8, `${result.stats.steps} steps`);
      assert.equal(result.stats.genTokens, 8);
      assert.ok(result.stats.promptTokens > 10);
    } finally {
      await engine.shutdown();
    }
  });

  it('dlm make-checkpoint writes the named geometry, and says what is missing', () => {
    const out = path.join(tmp, 'made');
    const run = spawnSync(process.execPath, [ENGINE, 'make-checkpoint', '--geometry', 'tiny-qwen2', '--out', out, '--seed', '2'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /tiny-qwen2 checkpoint \(random weights\) written to /);
    assert.match(run.stderr, /make-checkpoint: .* GiB written/);
    assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).model_type, 'qwen2');
    const missing = spawnSync(process.execPath, [ENGINE, 'make-checkpoint', '--out', out], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /--geometry is required \(qwen2.5-0.5b, dream-coder-7b, tiny-qwen2\)/);
  });

  it('dlm bench --geometry makes, converts (int4) and benches the geometry once, keeping the bench JSON shape', () => {
    const modelsDir = path.join(tmp, 'models');
    const json = path.join(tmp, 'bench.json');
    const args = ['bench', '--geometry', 'tiny-qwen2', '--cache', 'prefill', '--device', 'cpu', '--models-dir', modelsDir, '--json', json];
    const first = spawnSync(process.execPath, [ENGINE, ...args], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stderr, /writing a tiny-qwen2 checkpoint with random weights/);
    assert.match(first.stderr, /converting it \(int4acc4\.float32\.hybrid\.stats32\)/);
    const runs = (JSON.parse(fs.readFileSync(json, 'utf8')) as { runs: Record<string, unknown>[] }).runs;
    assert.deepEqual(runs.map((r) => [r.model, r.canvas, r.cache, r.promptTokens, r.genTokens]), [
      ['tiny-qwen2', '1024+16', 'none', 1024, 16],
      ['tiny-qwen2', '1024+16', 'prefill', 1024, 16],
    ]);
    for (const key of ['steps', 'tokensPerSecond', 'speedupVsNone', 'agreementVsNone', 'graphCalls', 'rowsPerCall', 'ms', 'graphMs']) assert.equal(typeof runs[0][key], 'number', key);
    const manifest = readManifest(path.join(modelsDir, fs.readdirSync(modelsDir).find((f) => f.endsWith('int4acc4.float32.hybrid.stats32'))!));
    assert.deepEqual(manifest.variants.map((v) => [v.precision, v.cacheDtype, v.head, v.int4AccuracyLevel]), [['int4', 'float32', 'stats', 4]]);
    const again = spawnSync(process.execPath, [ENGINE, ...args], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(again.status, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /writing|converting/);
  });
});
