/** Progress of a long command on stderr: one status line, redrawn in place on a terminal, else printed every 10 %. */
export function progressLine(label: string): (text: string, fraction: number) => void {
  let lastDecile = -1;
  return (text, fraction) => {
    if (process.stderr.isTTY) {
      process.stderr.write(`\r\x1b[2K${label}: ${text}`);
      if (fraction >= 1) process.stderr.write('\n');
      return;
    }
    const decile = Math.floor(fraction * 10);
    if (decile !== lastDecile) {
      lastDecile = decile;
      process.stderr.write(`${label}: ${text}\n`);
    }
  };
}
