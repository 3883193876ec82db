import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CPU_PLAN, formatGpuCheck, runGpuCheck } from '../../engine/bench/gpuCheck';
import { temporaryDir } from './graphTestSupport';

describe('the prepared GPU check (npm run check:gpu), at toy size on this machine', function () {
  this.timeout(120_000);

  it('writes a random checkpoint, converts it for the device, and measures each cache mode with its first partial result', async () => {
    const workDir = temporaryDir('gpu-check');
    try {
      const logs: string[] = [];
      const report = await runGpuCheck({ workDir, plan: { ...CPU_PLAN, geometries: ['tiny-qwen2'] }, log: (m) => logs.push(m) });
      const [result] = report.results;
      assert.deepEqual([result.geometry, result.device, result.ranOn, result.precision, result.kvLocation], ['tiny-qwen2', 'cpu', 'cpu', 'int8', 'host']);
      assert.deepEqual(result.modes.map((m) => m.cache), ['none', 'pd']);
      for (const mode of result.modes) {
        assert.ok(mode.steps >= 1 && mode.steps <= CPU_PLAN.canvas.steps && mode.graphCalls >= mode.steps);
        assert.ok(mode.firstPartialMs > 0 && mode.firstPartialMs <= mode.medianMs, `${mode.cache}: first partial ${mode.firstPartialMs} of ${mode.medianMs} ms`);
      }
      assert.ok(fs.existsSync(path.join(workDir, 'tiny-qwen2-random', 'config.json')), 'the checkpoint is kept for the next run');
      if (!report.gpuFound) assert.match(logs[0], /^No NVIDIA GPU found .*: measuring tiny-qwen2 on the CPU only, on the 128\+8 canvas\.$/);
      const table = formatGpuCheck(report).split('\n');
      assert.match(table[2], /^\| geometry \| device \| precision \| K\/V between steps \| cache \| median ms \| tokens\/s \| first partial ms \| peak GPU memory \|$/);
      assert.match(table[4], /^\| tiny-qwen2 \| cpu \| int8 \| host \| none \| [\d.]+ \| [\d.]+ \| [\d.]+ \| {2}\|$/);
    } finally {
      fs.rmSync(workDir, { recursive: true, force: true });
    }
  });
});
