/** `dlm convert`, run as the built bundle (`node dist/engine/main.js convert ...`). */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readManifest } from '../../engine/model/manifest';
import { writeFixtureCheckpoint } from './convertFixtures';
import { temporaryDir } from './graphTestSupport';

const ROOT = path.join(__dirname, '..', '..');
const ENGINE = path.join(ROOT, 'dist', 'engine', 'main.js');

function dlm(args: string[]) {
  const run = spawnSync(process.execPath, [ENGINE, ...args], { cwd: ROOT, encoding: 'utf8' });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('dlm convert', function () {
  this.timeout(120_000);
  let tmp: string;
  beforeEach(() => (tmp = temporaryDir('convert-cli')));
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('converts a checkpoint folder with the chosen precision, then refuses to overwrite it', async () => {
    const src = await writeFixtureCheckpoint(path.join(tmp, 'LLaDA-tiny'), 'llada');
    const out = path.join(tmp, 'model');
    const run = dlm(['convert', src.dir, out, '--precision', 'int4', '--cache-dtype', 'float32', '--name', 'tiny-llada']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /tiny-llada: llada family, 2 layers, vocab 320, mask 303, logit shift no/);
    assert.match(run.stderr, /convert: tensor (\d+)\/\1,/);
    const manifest = readManifest(out);
    assert.deepEqual(manifest.variants.map((v) => [v.precision, v.cacheDtype, v.attention, v.head]), [['int4', 'float32', 'hybrid', 'stats']]);
    const again = dlm(['convert', src.dir, out]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists and is not empty/);
  });

  it('fails with the architecture named, and with a usage error for missing arguments', async () => {
    const src = await writeFixtureCheckpoint(path.join(tmp, 'src'), 'dream');
    fs.writeFileSync(path.join(src.dir, 'config.json'), JSON.stringify({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' }));
    const run = dlm(['convert', src.dir, path.join(tmp, 'out')]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /dlm convert: unsupported architecture GPT2LMHeadModel, model_type "gpt2"; supported: /);
    assert.ok(!fs.existsSync(path.join(tmp, 'out')));
    const usage = dlm(['convert', src.dir]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /Missing argument <out-dir>/);
  });
});
