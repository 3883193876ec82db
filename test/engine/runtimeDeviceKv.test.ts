/**
 * Where K/V live and what crosses the host boundary: graph calls bring back only the new K/V that a plan
 * stores (CPU, every policy unchanged), and on WebGPU (SwiftShader, in a child process) a request's K/V stay
 * on the device: device-resident context equals the host path's compacted context, and whole requests give the
 * tokens of the host path and of the CPU provider while moving no K/V at all.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { stepModelShape, type StepFeeds, type StepModel, type StepRunOptions } from '../../engine/graph/stepContract';
import { writeSyntheticModel, type SyntheticPreset } from '../../engine/model/synthetic';
import type { ModelManifest } from '../../engine/model/manifest';
import { loadStepModel, type OnnxStepModel } from '../../engine/runtime/onnxStepModel';
import { denoise, type DenoiseSpec } from '../../engine/denoiser/denoiser';
import { DEFAULT_DECODING_OPTIONS } from '../../common/decodingOptions';
import type { DecodingOptions } from '../../common/decodingOptions';
import { maxAbsDiff, stepFeeds, temporaryDir } from './graphTestSupport';
import { DEVICE_KV_CANVAS, DEVICE_KV_MODES } from './runtimeDeviceKvCases';

const run = promisify(execFile);
const VARIANT = { precision: 'fp32', cacheDtype: 'float32', attention: 'decomposed', head: 'logits', topK: 0 } as const;

/** The model, writing down where each call asked for its new K/V. */
function recordingDestinations(model: StepModel): { model: StepModel; destinations: string[] } {
  const destinations: string[] = [];
  return {
    destinations,
    model: {
      numLayers: model.numLayers,
      numKvHeads: model.numKvHeads,
      headDim: model.headDim,
      cacheDtype: model.cacheDtype,
      head: model.head,
      run: (feeds: StepFeeds, options?: StepRunOptions) => {
        destinations.push(options?.newKv ?? 'host');
        return model.run(feeds, options);
      },
    },
  };
}

/** The model as a caller that passes no run options sees it: every call brings back every new K/V. */
function fetchingEverything(model: StepModel): StepModel {
  return {
    ...stepModelShape(model),
    run: (feeds: StepFeeds) => model.run(feeds),
  };
}

function kvRowBytes(model: StepModel): number {
  return 2 * model.numLayers * model.numKvHeads * model.headDim * (model.cacheDtype === 'float16' ? 2 : 4);
}

const MODES: { label: string; options: Partial<DecodingOptions> }[] = [
  ...DEVICE_KV_MODES,
  { label: 'greedy random N=2 W=1', options: { cache: 'greedy', refreshInterval: 2, window: 1, greedyOrder: 'random' } },
];

for (const preset of ['tiny-dream', 'tiny-llada'] as SyntheticPreset[]) {
  describe(`graph calls fetch only the K/V they store (${preset}, CPU)`, function () {
    this.timeout(120_000);
    let dir: string;
    let manifest: ModelManifest;
    let model: OnnxStepModel;
    let spec: DenoiseSpec;

    before(async () => {
      dir = temporaryDir(`fetch-${preset}`);
      manifest = await writeSyntheticModel(dir, { preset, seed: 9, variants: [{ ...VARIANT, attention: 'gqa' }] });
      model = (await loadStepModel(dir, manifest, { device: 'cpu' })).model;
      const arch = manifest.architecture;
      spec = { tokens: manifest.tokens, logitShift: arch.logitShift, vocabSize: arch.vocabSize };
    });

    after(async () => {
      await model.release();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    const request = (options: Partial<DecodingOptions>) => ({
      prefixIds: DEVICE_KV_CANVAS.prefix,
      suffixIds: DEVICE_KV_CANVAS.suffix,
      length: DEVICE_KV_CANVAS.fill,
      options: { ...DEFAULT_DECODING_OPTIONS, ...DEVICE_KV_CANVAS.options, ...options },
      runToCompletion: true,
    });

    it("a call told that nobody reads its new K/V returns the same predictions and no K/V; the CPU keeps none on a device", async () => {
      const call = { ids: [5, 257, 257, 9, 40], positions: [0, 1, 2, 3, 4], read: [1, 2] };
      const everything = await model.run(stepFeeds(model, call));
      const headOnly = await model.run(stepFeeds(model, call), { newKv: 'none' });
      assert.ok(everything.predictions.kind === 'logits' && headOnly.predictions.kind === 'logits');
      assert.deepEqual(headOnly.predictions.logits, everything.predictions.logits);
      assert.equal(everything.newKeys[1].length, model.numKvHeads * 5 * model.headDim);
      for (const kv of [...headOnly.newKeys, ...headOnly.newValues]) assert.equal(kv.length, 0);
      assert.equal(model.deviceKv, undefined);
      await assert.rejects(model.run(stepFeeds(model, call), { newKv: 'device' }), /keeps no K\/V on a device/);
    });

    for (const mode of MODES) {
      it(`${mode.label}: the tokens and row counts of a run that fetches every new K/V`, async () => {
        const lean = await denoise(model, spec, request(mode.options));
        const everything = await denoise(fetchingEverything(model), spec, request(mode.options));
        assert.deepEqual(lean.fill, everything.fill);
        assert.deepEqual(lean.stats.rowsPerCall, everything.stats.rowsPerCall);
        assert.equal(everything.stats.kvBytesDownloaded, everything.stats.rowsComputed * kvRowBytes(model));
        assert.equal(lean.stats.kvBytesUploaded, everything.stats.kvBytesUploaded);
        if (mode.options.cache === 'none') assert.equal(lean.stats.kvBytesDownloaded, 0);
      });
    }

    it('none moves no K/V; prefill brings back the first pass and the rows it stores later, and sends its context every cached call', async () => {
      const noneCalls = recordingDestinations(model);
      const none = await denoise(noneCalls.model, spec, request({ cache: 'none' }));
      assert.ok(noneCalls.destinations.every((d) => d === 'none'));
      assert.deepEqual([none.stats.kvBytesUploaded, none.stats.kvBytesDownloaded], [0, 0]);
      const prefillCalls = recordingDestinations(model);
      const prefill = await denoise(prefillCalls.model, spec, request({ cache: 'prefill', refreshInterval: 0 }));
      const rowBytes = kvRowBytes(model);
      const { fill } = DEVICE_KV_CANVAS;
      const canvas = DEVICE_KV_CANVAS.prefix.length + fill + DEVICE_KV_CANVAS.suffix.length;
      const [first, ...cached] = prefill.stats.rowsPerCall;
      assert.equal(first, canvas);
      // Shifted: the last prefix row predicts the first fill position, so it is a query row (fill + 1 rows) until
      // that position is committed; the next call stores it, the only cached call that brings K/V back.
      const storedLater = spec.logitShift && cached.includes(fill) ? fill + 1 : 0;
      assert.deepEqual(prefillCalls.destinations, prefill.stats.rowsPerCall.map((_, i) => (i === 0 || (storedLater && i === cached.indexOf(fill)) ? 'host' : 'none')));
      assert.ok(cached.every((q) => q === fill || (spec.logitShift && q === fill + 1)));
      assert.equal(prefill.stats.kvBytesDownloaded, (canvas + storedLater) * rowBytes);
      assert.equal(prefill.stats.kvBytesUploaded, cached.reduce((sum, q) => sum + (canvas - q), 0) * rowBytes);
    });
  });
}

describe('K/V on the WebGPU device (SwiftShader)', function () {
  this.timeout(300_000);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let report: any;

  before(async function () {
    const dir = temporaryDir('device-kv');
    await writeSyntheticModel(dir, { preset: 'tiny-dream', seed: 9, variants: [VARIANT] });
    // A child process: the Vulkan driver is chosen once per process, before its first WebGPU session.
    const probe = path.join(__dirname, 'runtimeDeviceKvProbe.ts');
    const { stdout } = await run(process.execPath, ['-r', 'tsx/cjs', probe, dir, 'step.fp32.float32.decomposed.logits.onnx'], {
      timeout: 240_000,
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? os.tmpdir() },
    });
    fs.rmSync(dir, { recursive: true, force: true });
    report = JSON.parse(stdout.trim().split('\n').pop()!);
    if (report.adapterUnavailable) {
      // Only when no WebGPU adapter can be created at all (.ci/run installs chromium for SwiftShader).
      console.warn(`      skipped: no WebGPU adapter: ${report.adapterUnavailable}`);
      this.skip();
    }
    assert.ok(report.runs, report.error);
  });

  it('loads with device K/V on WebGPU and without on the CPU', () => {
    assert.equal(report.deviceKv, true);
    assert.equal(report.deviceKvUnavailable, null);
    assert.equal(report.cpuDeviceKv, false);
  });

  it("hiding the query rows' and invalid rows' columns of the whole stored canvas equals the compacted context", () => {
    // The same sums in another order (fp32 on SwiftShader): ~1e-6.
    assert.ok(maxAbsDiff(report.graph.resident, report.graph.compacted) < 1e-4);
    assert.ok(maxAbsDiff(report.graph.residentNewKeys, report.graph.compactedNewKeys) < 1e-4);
  });

  for (const { label } of DEVICE_KV_MODES) {
    it(`${label}: the tokens of the host path on the same device and of the CPU provider, with no K/V moved`, () => {
      const result = report.runs.find((r: { label: string }) => r.label === label);
      // Exact: device and host paths differ only in the order of the attention sums, WebGPU and CPU by
      // reordered fp32 sums (~1e-5 on logits), far below the gaps between the tiny model's top logits here.
      assert.deepEqual(result.device.fill, result.host.fill);
      assert.deepEqual(result.device.fill, result.cpu.fill);
      assert.deepEqual(result.device.stats.rowsPerCall, result.host.stats.rowsPerCall);
      assert.deepEqual([result.device.stats.kvBytesUploaded, result.device.stats.kvBytesDownloaded], [0, 0]);
      assert.deepEqual(
        [result.host.stats.kvBytesUploaded, result.host.stats.kvBytesDownloaded],
        [result.cpu.stats.kvBytesUploaded, result.cpu.stats.kvBytesDownloaded],
      );
      if (label !== 'none') assert.ok(result.host.stats.kvBytesUploaded > 0 && result.deviceKvMade > 0);
      // Every device K/V handed out was disposed: replaced stores and written rows during the request, the
      // last store at its end.
      assert.equal(result.deviceKvLive, 0);
    });
  }

  it('a cancelled request releases its device K/V', () => {
    assert.equal(report.cancelled.with, 'CancelledError');
    assert.ok(report.cancelled.made > 0);
    assert.equal(report.cancelled.live, 0);
  });
});
