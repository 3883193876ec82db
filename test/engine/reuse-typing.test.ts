/**
 * The typing benchmark: its edit sequences are real text typed out in order, one request per debounced
 * keystroke, and a short run through the engine reports both sides with the shape `--json` writes.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runTypingBench, weightsOf } from '../../engine/bench/typingBench';
import { builtinModelDir } from '../../engine/store/modelManager';
import { typingSessions } from '../../engine/bench/typingSessions';
import { writeSyntheticModel } from '../../engine/model/synthetic';
import { prepareModelForReuse } from '../../engine/prepare/prepareModel';
import { loadSourceTexts } from '../../engine/prepare/sourceTexts';
import { MIN_CONTEXT_TOKENS } from '../../engine/service/coldBudget';
import { temporaryDir } from './graphTestSupport';
import { FP32_GQA } from './reuseTestSupport';

const SOURCE = path.join(__dirname, '..', '..', 'engine', 'reuse');

describe('typing benchmark', function () {
  this.timeout(180_000);

  it('calls only the built-in model trained; a converted checkpoint may have random weights', () => {
    assert.equal(weightsOf('builtin', builtinModelDir(), 'huggingface'), 'trained');
    assert.equal(weightsOf('/models/qwen-0.5b-random', '/models/qwen-0.5b-random', 'huggingface'), 'unknown');
    assert.equal(weightsOf('synthetic', '/models/typing-synthetic', 'synthetic'), 'random');
  });

  it('types a region of a real file out again in order, one request per debounced keystroke', () => {
    const texts = loadSourceTexts(SOURCE);
    const sessions = typingSessions(texts, { sessions: 3, charsPerSession: 60, debounceMs: 200, seed: 1 });
    assert.equal(sessions.length, 3);
    assert.deepEqual(typingSessions(texts, { sessions: 3, charsPerSession: 60, debounceMs: 200, seed: 1 }), sessions, 'seeded');
    for (const session of sessions) {
      const original = texts.find((t) => t.id === session.source)!.text;
      assert.ok(session.typedChars >= 60 && session.keystrokes <= session.typedChars);
      assert.ok(session.requests.length >= 1 && session.requests.length <= session.keystrokes);
      let previous = -1;
      for (const r of session.requests) {
        assert.ok(r.atMs > previous, 'requests in time order');
        previous = r.atMs;
        // The document is always the original with the rest of the region not yet typed.
        assert.ok(original.startsWith(r.before));
        assert.ok(original.endsWith(r.after));
        assert.ok(r.before.length + r.after.length <= original.length);
      }
      const last = session.requests[session.requests.length - 1];
      assert.equal(last.before + last.after, original, 'the last request sees the region typed out completely');
    }
  });

  it('runs every request with each reuse mode and without reuse and reports medians in the --json shape', async () => {
    const dir = temporaryDir('reuse-typing');
    try {
      const model = path.join(dir, 'model');
      // 256 positions: the canvases stay small (the extension's context budget follows the model's limit).
      await writeSyntheticModel(model, { preset: 'tiny-dream', seed: 2, variants: [FP32_GQA], architecture: { numLayers: 3, maxPositions: 256 } });
      await prepareModelForReuse(model, { device: 'cpu', source: SOURCE, samplesPerRatio: 1, canvasTokens: 96, fillTokens: 8 });
      const report = await runTypingBench({
        model,
        device: 'cpu',
        source: SOURCE,
        sessions: 1,
        charsPerSession: 24,
        debounceMs: 200,
        seed: 0,
        overrides: { steps: 8 },
        reuseModes: ['full-depth', 'depthwise'],
        modelsDir: path.join(dir, 'models'),
        log: () => {},
      });
      const json = JSON.parse(JSON.stringify({ typing: report }));
      assert.ok(json.typing.requests >= 1);
      assert.ok(json.typing.agreement >= 0 && json.typing.agreement <= 1);
      for (const side of [json.typing.reuse, json.typing.noReuse]) {
        for (const field of ['firstPartialMs', 'finalMs', 'requestsPerSecond']) assert.ok(side[field] > 0, field);
        assert.ok(side.firstPartialMs <= side.finalMs);
      }
      assert.ok(report.reusedPrefixTokens > 0 && report.reusedSuffixTokens > 0, 'consecutive keystrokes reuse their shared prompt');
      assert.equal(json.typing.reuseMode, 'full-depth');
      assert.equal(json.typing.cache, 'pd', 'no reuse is cold pd (the inline default) unless --cache says otherwise');
      assert.ok(json.typing.depthwise.finalMs > 0 && json.typing.depthwise.agreement >= 0 && json.typing.depthwise.agreement <= 1);
      assert.ok(json.typing.coldMs > 0 && json.typing.warmUp.finalMs > 0 && json.typing.warmUp.firstPartialMs <= json.typing.warmUp.finalMs);
      assert.equal(json.typing.weights, 'random', 'a synthetic folder');

      // With a cold budget no request can meet, every canvas is cut to the fill and the minimum of context.
      const budgeted = await runTypingBench({
        model, device: 'cpu', source: SOURCE, sessions: 1, charsPerSession: 24, debounceMs: 200, seed: 0, overrides: { steps: 8 },
        reuseModes: ['full-depth'], modelsDir: path.join(dir, 'models'), log: () => {}, coldBudgetMs: 1e-6,
      });
      assert.equal(budgeted.coldBudgetMs, 1e-6);
      assert.ok(budgeted.canvasTokens <= 32 + MIN_CONTEXT_TOKENS && budgeted.canvasTokens < report.canvasTokens, `${budgeted.canvasTokens} against ${report.canvasTokens}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
