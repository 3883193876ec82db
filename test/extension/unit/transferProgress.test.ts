import { strict as assert } from 'node:assert';
import { LoadProgressReporter } from '../../../extension/loadProgress';
import { formatBytes, formatDuration, TransferRate } from '../../../extension/transferProgress';

describe('download progress in words', () => {
  it('formats sizes in decimal units and durations in s, min, h', () => {
    assert.deepEqual([formatBytes(512), formatBytes(1_234_000), formatBytes(15.23e9), formatBytes(123.4e6)], ['512 B', '1.23 MB', '15.2 GB', '123 MB']);
    assert.deepEqual([formatDuration(0.2), formatDuration(42), formatDuration(540), formatDuration(7260)], ['1 s', '42 s', '9 min', '2 h 1 min']);
  });

  it('measures the rate over recent seconds and the time left at that rate', () => {
    const rate = new TransferRate();
    rate.add(1e9, 0); // resumed: a gigabyte was already there
    assert.equal(rate.describe(1e9, 11e9), '1.00 GB of 11.0 GB');
    for (let s = 1; s <= 10; s++) rate.add(1e9 + s * 20e6, s * 1000);
    assert.equal(rate.bytesPerSecond(), 20e6, 'only the recent window counts, not the resumed gigabyte');
    assert.equal(rate.describe(1.2e9, 11e9), '1.20 GB of 11.0 GB · 20.0 MB/s · 8 min left');
  });

  it('one notification: bytes for the download, then the conversion, the bar moving forward only', () => {
    const reports: { message?: string; increment?: number }[] = [];
    let now = 0;
    const reporter = new LoadProgressReporter({ report: (r) => reports.push(r) }, 'org/model', () => now);
    reporter.report({ stage: 'download', message: 'x', receivedBytes: 0, totalBytes: 100e6, fraction: 0 });
    now = 2000;
    reporter.report({ stage: 'download', message: 'x', receivedBytes: 50e6, totalBytes: 100e6, fraction: 0.5 });
    assert.equal(reporter.lastMessage, 'Downloading org/model: 50.0 MB of 100 MB · 25.0 MB/s · 2 s left');
    reporter.report({ stage: 'download', message: 'x', receivedBytes: 100e6, totalBytes: 100e6, fraction: 1 });
    reporter.report({ stage: 'convert', message: 'Converting org/model to int4: tensor 1 of 4', fraction: 0 });
    reporter.report({ stage: 'convert', message: 'Converting org/model to int4: tensor 4 of 4', fraction: 1 });
    reporter.report({ stage: 'session', message: 'Creating the cpu session' });
    assert.equal(reporter.lastMessage, 'Creating the cpu session');
    const total = reports.reduce((sum, r) => sum + (r.increment ?? 0), 0);
    assert.ok(Math.abs(total - 100) < 1e-9, `the bar ends full (${total})`);
    assert.ok(reports.every((r) => (r.increment ?? 0) >= 0));
    assert.equal(reports[3].increment, 0, 'the conversion starts where the download ended');
  });
});
