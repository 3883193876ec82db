import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkFreeSpace, convertCheckpoint } from '../../engine/convert/convert';
import { writeFixtureCheckpoint } from './convertFixtures';
import { temporaryDir } from './graphTestSupport';

/** Rewrites one tensor's dtype in a safetensors header, keeping the header length (same element size). */
function retypeTensor(file: string, tensor: string, dtype: string) {
  const bytes = fs.readFileSync(file);
  const length = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8'));
  header[tensor].dtype = dtype;
  const json = JSON.stringify(header);
  assert.ok(json.length <= length);
  bytes.write(json.padEnd(length, ' '), 8, 'utf8');
  fs.writeFileSync(file, bytes);
}

describe('conversion errors: clear messages, nothing half-written', function () {
  this.timeout(60_000);
  let tmp: string;
  beforeEach(() => (tmp = temporaryDir('convert-err')));
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const leftovers = () => fs.readdirSync(tmp).filter((f) => f !== 'src');

  it('refuses an unknown architecture, naming it and what is supported', async () => {
    const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'open-dcoder');
    fs.writeFileSync(path.join(src.dir, 'config.json'), JSON.stringify({ architectures: ['MambaForCausalLM'], model_type: 'mamba' }));
    await assert.rejects(
      convertCheckpoint(src.dir, path.join(tmp, 'out')),
      /unsupported architecture MambaForCausalLM, model_type "mamba"; supported: Dream .*LLaDA/,
    );
    assert.deepEqual(leftovers(), []);
  });

  it('refuses unsupported settings of a known family by name', async () => {
    const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'dream');
    const config = JSON.parse(fs.readFileSync(path.join(src.dir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(src.dir, 'config.json'), JSON.stringify({ ...config, rope_scaling: { type: 'yarn', factor: 4 } }));
    await assert.rejects(convertCheckpoint(src.dir, path.join(tmp, 'out')), /rope_scaling \{"type":"yarn","factor":4\} is not supported/);
  });

  it('names the missing tokenizer and how to fix it', async () => {
    const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'open-dcoder');
    fs.rmSync(path.join(src.dir, 'tokenizer.json'));
    await assert.rejects(convertCheckpoint(src.dir, path.join(tmp, 'out')), /has no tokenizer.json .*copy the model's tokenizer.json/);
    assert.deepEqual(leftovers(), []);
  });

  it('says how to supply a mask token when neither the config nor the tokenizer has one', async () => {
    const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'open-dcoder');
    const file = path.join(src.dir, 'tokenizer.json');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('"<M>"', '"<unused>"'));
    await assert.rejects(convertCheckpoint(src.dir, path.join(tmp, 'out')), /no mask token: .*add "mask_token_id": <id> to config.json/);
  });

  it('names weights that do not match the config', async () => {
    const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'llada');
    const config = JSON.parse(fs.readFileSync(path.join(src.dir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(src.dir, 'config.json'), JSON.stringify({ ...config, mlp_hidden_size: 96 }));
    await assert.rejects(
      convertCheckpoint(src.dir, path.join(tmp, 'out')),
      /model.transformer.blocks.0.ff_proj.weight has shape \[64, 32\] but config.json implies \[96, 32\]/,
    );
  });

  it('removes everything when it fails halfway through writing the graph', async () => {
    const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'dream');
    // The final norm is read last; as I16 the header stays valid but the tensor cannot be converted.
    retypeTensor(path.join(src.dir, 'model.safetensors'), 'model.norm.weight', 'I16');
    let tensorsWritten = 0;
    await assert.rejects(
      convertCheckpoint(src.dir, path.join(tmp, 'out'), { precision: 'fp32', onProgress: (p) => (tensorsWritten = p.tensor) }),
      /model.norm.weight has dtype I16; only F32, F16 and BF16 can be converted/,
    );
    assert.ok(tensorsWritten > 10, `failed after ${tensorsWritten} tensors`);
    assert.deepEqual(leftovers(), []);
  });

  it('will not write into a folder that already has files', async () => {
    const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'coda');
    fs.mkdirSync(path.join(tmp, 'out'));
    fs.writeFileSync(path.join(tmp, 'out', 'keep.txt'), 'mine');
    await assert.rejects(convertCheckpoint(src.dir, path.join(tmp, 'out')), /already exists and is not empty/);
    assert.equal(fs.readFileSync(path.join(tmp, 'out', 'keep.txt'), 'utf8'), 'mine');
    // An empty folder is fine.
    fs.rmSync(path.join(tmp, 'out', 'keep.txt'));
    await convertCheckpoint(src.dir, path.join(tmp, 'out'), { precision: 'fp32' });
    assert.ok(fs.existsSync(path.join(tmp, 'out', 'dlm-model.json')));
  });

  it('clears what an abandoned conversion left behind, but not what a running one is writing', async () => {
    const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'coda');
    const exited = spawnSync(process.execPath, ['-e', '']).pid;
    const abandoned = path.join(tmp, `.out.partial-${exited}-0a0a0a0a`);
    const running = path.join(tmp, `.out.partial-${process.pid}-0b0b0b0b`);
    for (const dir of [abandoned, running]) {
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'step.onnx_data'), 'partial');
    }
    await convertCheckpoint(src.dir, path.join(tmp, 'out'), { precision: 'fp32' });
    assert.ok(!fs.existsSync(abandoned));
    assert.ok(fs.existsSync(running));
  });

  it('checks free disk space against the estimate and says how much is needed', async () => {
    await checkFreeSpace(tmp, 1024);
    await assert.rejects(checkFreeSpace(tmp, 2 ** 60), /not enough disk space in .*needs about \d+\.\d\d GiB, \d+\.\d\d GiB is free/);
  });
});
