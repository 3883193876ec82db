/**
 * The extension's engine supervisor with real `dlm serve` processes (it uses no VS Code API): the engine is
 * killed 100 times with requests in flight; each restart must recover (a new process that answers, loads the
 * model and fills when asked) and every request must end with an answer or an error, none left hanging.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeSyntheticModel } from '../../../engine/model/synthetic';
import { killUnderSupervisor } from '../../reliability/supervisedKills';

describe('engine supervisor (real engine processes)', function () {
  this.timeout(900_000);
  let modelDir: string;

  before(async () => {
    modelDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlm-supervisor-'));
    await writeSyntheticModel(modelDir, { preset: 'tiny-dream', seed: 3, variants: [{ precision: 'fp32', cacheDtype: 'float32', attention: 'gqa', head: 'logits', topK: 0 }] });
  });
  after(() => fs.rmSync(modelDir, { recursive: true, force: true }));

  it('recovers from 100 kills with requests in flight; every request is answered or fails, none is lost', async () => {
    const report = await killUnderSupervisor({ kills: 100, seed: 16, modelDir, loadEvery: 10 });
    assert.equal(report.kills, 100);
    assert.equal(report.engines, 101, 'each kill was followed by a new engine that answered');
    assert.equal(report.fills, 11, 'every tenth engine loaded the model and filled');
    assert.equal(report.lost, 0, `${report.lost} of ${report.requests} requests got neither an answer nor an error`);
    assert.equal(report.answered + report.failed, report.requests);
    // Requests asked while the engine restarted were answered by the next one; some in flight died with it.
    assert.ok(report.answered >= 100 && report.failed >= 1, `${report.answered} answered, ${report.failed} failed`);
  });
});
