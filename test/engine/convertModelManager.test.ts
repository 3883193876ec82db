import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MANIFEST_FILE } from '../../engine/model/manifest';
import { builtinModelDir, resolveModel } from '../../engine/store/modelManager';

describe('model manager: builtin and model folders', () => {
  let tmp: string;
  const savedEnv = process.env.DLM_BUILTIN_MODEL;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dlm-mm-'));
  });
  afterEach(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (savedEnv === undefined) delete process.env.DLM_BUILTIN_MODEL;
    else process.env.DLM_BUILTIN_MODEL = savedEnv;
  });

  it('places the built-in model at models/builtin beside the engine bundle folder', () => {
    // From dist/engine/main.js, __dirname is dist/engine; from the sources it is engine/model.
    assert.equal(builtinModelDir({}), path.join(__dirname, '..', '..', 'engine', 'models', 'builtin'));
    assert.equal(builtinModelDir({ DLM_BUILTIN_MODEL: 'rel/dir' }), path.resolve('rel/dir'));
  });

  it('resolves builtin through DLM_BUILTIN_MODEL, and says what is missing when it is not a model', async () => {
    process.env.DLM_BUILTIN_MODEL = tmp;
    await assert.rejects(resolveModel('builtin', { cacheDir: tmp }), /built-in model is missing.*DLM_BUILTIN_MODEL/s);
    fs.writeFileSync(path.join(tmp, MANIFEST_FILE), '{}');
    assert.equal(await resolveModel('builtin', { cacheDir: tmp }), tmp);
    assert.equal(await resolveModel('', { cacheDir: tmp }), tmp);
  });

  it('uses a model folder as it is and names the problem for anything else', async () => {
    const model = path.join(tmp, 'm');
    fs.mkdirSync(model);
    fs.writeFileSync(path.join(model, MANIFEST_FILE), '{}');
    assert.equal(await resolveModel(model, { cacheDir: tmp }), model);
    await assert.rejects(resolveModel(path.join(tmp, 'nope'), { cacheDir: tmp }), /does not exist/);
    await assert.rejects(resolveModel(tmp, { cacheDir: tmp }), new RegExp(`has neither ${MANIFEST_FILE} \\(a model folder\\) nor config.json`));
  });
});
