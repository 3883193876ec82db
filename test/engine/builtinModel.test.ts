/**
 * The built-in checkpoint (engine/models/builtin, trained in PyTorch by engine/training/train.py) travels the
 * path of every Hugging Face checkpoint: the project's converter turns it into a step graph whose logits
 * on a fixed infill canvas match the PyTorch model's (engine/training/dump_logits.py wrote them).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { convertCheckpoint } from '../../engine/convert/convert';
import { ATTENTION_LOWERINGS } from '../../engine/graph/stepContract';
import { loadStepModel } from '../../engine/runtime/onnxStepModel';
import { temporaryDir } from './graphTestSupport';

const repo = path.join(__dirname, '..', '..');
const checkpointDir = path.join(repo, 'engine', 'models', 'builtin');

interface LogitsFixture {
  checkpoint_weights_sha256: string;
  input_ids: number[];
  vocab_size: number;
  rows: number[];
  argmax: number[];
  logits_f32_base64: string;
}

/**
 * fp32 graph against fp32 PyTorch: the two sum in different orders (fused attention, MatMul blocking), so
 * logits agree to rounding, well under a thousandth for logits of magnitude ~10.
 */
const TOLERANCE = 1e-3;

describe('built-in model: converted graph against the PyTorch reference', function () {
  this.timeout(180_000);
  const fixture = JSON.parse(
    readFileSync(path.join(repo, 'engine', 'training', 'fixtures', 'builtin-logits.json'), 'utf8'),
  ) as LogitsFixture;
  const bytes = Buffer.from(fixture.logits_f32_base64, 'base64');
  const expected = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  let tmp: string;
  before(() => (tmp = temporaryDir('builtin-model')));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('is the checkpoint the reference logits were computed from', () => {
    const weights = readFileSync(path.join(checkpointDir, 'model.safetensors'));
    assert.equal(createHash('sha256').update(weights).digest('hex'), fixture.checkpoint_weights_sha256,
      'engine/models/builtin changed: re-run engine/training/dump_logits.py');
  });

  for (const attention of ATTENTION_LOWERINGS) {
    it(`gives the PyTorch logits on an infill canvas (fp32, ${attention} attention)`, async () => {
      const out = path.join(tmp, attention);
      const { manifest } = await convertCheckpoint(checkpointDir, out, { precision: 'fp32', attention, head: 'logits' });
      assert.equal(manifest.architecture.logitShift, true);
      const { model } = await loadStepModel(out, manifest, { device: 'cpu' });
      const n = fixture.input_ids.length;
      const empty = new Float32Array(0);
      const result = await model.run({
        inputIds: BigInt64Array.from(fixture.input_ids, BigInt),
        positionIds: BigInt64Array.from({ length: n }, (_, i) => BigInt(i)),
        attentionBias: new Float32Array(n * n),
        logitsIndex: BigInt64Array.from(fixture.rows, BigInt),
        pastKeys: new Array(model.numLayers).fill(empty),
        pastValues: new Array(model.numLayers).fill(empty),
        contextLength: 0,
      });
      const predictions = result.predictions;
      assert.equal(predictions.kind, 'logits');
      if (predictions.kind !== 'logits') return;
      assert.equal(predictions.logits.length, expected.length);
      let worst = 0;
      for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(predictions.logits[i] - expected[i]));
      assert.ok(worst <= TOLERANCE, `largest logit difference ${worst}`);
      fixture.rows.forEach((row, r) => {
        const logits = predictions.logits.subarray(r * fixture.vocab_size, (r + 1) * fixture.vocab_size);
        let best = 0;
        for (let v = 1; v < logits.length; v++) if (logits[v] > logits[best]) best = v;
        assert.equal(best, fixture.argmax[row], `row ${row}: argmax`);
      });
    });
  }
});
