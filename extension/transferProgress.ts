/**
 * The words of a download's progress: bytes so far of the total, the rate over the last few seconds, and the
 * time left at that rate ("1.2 GB of 15.2 GB · 24.1 MB/s · 9 min left"). Pure, so it is tested without an
 * editor; the notification that shows it is in loadProgress.ts.
 */

/** Decimal units, as the hub and file managers show sizes. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0)} ${units[unit]}`;
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  const hours = Math.floor(seconds / 3600);
  return `${hours} h ${Math.round((seconds - hours * 3600) / 60)} min`;
}

/** The rate is measured over this much recent time, so it follows a changing network without jumping. */
const WINDOW_MS = 5000;

export class TransferRate {
  private readonly samples: { at: number; bytes: number }[] = [];

  /** Records that `bytes` are present at time `at` (ms); bytes resumed from before count as present, not as speed. */
  add(bytes: number, at: number): void {
    const last = this.samples[this.samples.length - 1];
    if (last && bytes < last.bytes) this.samples.length = 0; // a file started over
    this.samples.push({ at, bytes });
    while (this.samples.length > 2 && at - this.samples[1].at > WINDOW_MS) this.samples.shift();
  }

  /** Bytes per second over the window, or null until there are two samples some time apart. */
  bytesPerSecond(): number | null {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || last.at - first.at < 250) return null;
    return ((last.bytes - first.bytes) * 1000) / (last.at - first.at);
  }

  /** "1.2 GB of 15.2 GB · 24.1 MB/s · 9 min left", leaving out what is not known yet. */
  describe(received: number, total: number): string {
    const parts = [total > 0 ? `${formatBytes(received)} of ${formatBytes(total)}` : formatBytes(received)];
    const rate = this.bytesPerSecond();
    if (rate !== null && rate > 0) {
      parts.push(`${formatBytes(rate)}/s`);
      if (total > received) parts.push(`${formatDuration((total - received) / rate)} left`);
    }
    return parts.join(' · ');
  }
}
