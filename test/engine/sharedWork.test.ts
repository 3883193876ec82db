import { strict as assert } from 'node:assert';
import { SharedWork, WorkWithdrawn } from '../../engine/service/sharedWork';

/** Work that runs until released, recording its signal. */
function controllable() {
  const runs: { signal: AbortSignal; progress: (p: number) => void; finish: (value: string) => void }[] = [];
  const work = (signal: AbortSignal, progress: (p: number) => void) =>
    new Promise<string>((resolve, reject) => {
      runs.push({ signal, progress, finish: resolve });
      signal.addEventListener('abort', () => reject(new Error('aborted')));
    });
  return { runs, work };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('shared work (one download for every caller)', () => {
  it('runs once for callers asking at the same time, and gives each the progress and the result', async () => {
    const shared = new SharedWork<string, number>();
    const { runs, work } = controllable();
    const seen: number[][] = [[], []];
    const first = shared.run('m', work, { onProgress: (p) => seen[0].push(p) });
    const second = shared.run('m', work, { onProgress: (p) => seen[1].push(p) });
    await tick();
    assert.equal(runs.length, 1);
    assert.deepEqual(shared.keys(), ['m']);
    runs[0].progress(0.5);
    runs[0].finish('dir');
    assert.deepEqual(await Promise.all([first, second]), ['dir', 'dir']);
    assert.deepEqual(seen, [[0.5], [0.5]]);
    assert.deepEqual(shared.keys(), []);
  });

  it('a caller that withdraws leaves the work running for the others; the last one stops it', async () => {
    const shared = new SharedWork<string, number>();
    const { runs, work } = controllable();
    const a = new AbortController();
    const b = new AbortController();
    const first = shared.run('m', work, { signal: a.signal });
    const second = shared.run('m', work, { signal: b.signal });
    await tick();
    a.abort();
    await assert.rejects(first, WorkWithdrawn);
    assert.equal(runs[0].signal.aborted, false, 'still wanted by the second caller');
    b.abort();
    await assert.rejects(second, WorkWithdrawn);
    assert.equal(runs[0].signal.aborted, true, 'nobody wants it any more');
  });

  it('a caller arriving after the work was stopped starts it afresh once the stopped run has ended', async () => {
    const shared = new SharedWork<string, number>();
    const events: string[] = [];
    let releaseStopped!: () => void;
    const slowToStop = (signal: AbortSignal) =>
      new Promise<string>((_, reject) => {
        signal.addEventListener('abort', () => {
          events.push('abort seen');
          releaseStopped = () => {
            events.push('stopped');
            reject(new Error('aborted'));
          };
        });
      });
    const a = new AbortController();
    const first = shared.run('m', slowToStop, { signal: a.signal });
    a.abort();
    await assert.rejects(first, WorkWithdrawn);
    const again = shared.run('m', async () => {
      events.push('fresh run');
      return 'dir';
    });
    await tick();
    assert.deepEqual(events, ['abort seen'], 'the fresh run waits for the stopped one');
    releaseStopped();
    assert.equal(await again, 'dir');
    assert.deepEqual(events, ['abort seen', 'stopped', 'fresh run']);
  });
});
