import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { measureMachine, parseNvidiaSmi } from '../../engine/machine/machineFacts';
import { temporaryDir } from './graphTestSupport';

const GIB = 1024 ** 3;

describe('machine facts', () => {
  it("reads nvidia-smi's CSV: names with commas, memory in MiB, unreadable fields as null", () => {
    const gpus = parseNvidiaSmi('NVIDIA H100 80GB HBM3, 81559, 80987\nNVIDIA RTX A1000, Laptop, 4096, [N/A]\n\n');
    assert.deepEqual(gpus, [
      { name: 'NVIDIA H100 80GB HBM3', memoryBytes: 81559 * 1024 ** 2, freeMemoryBytes: 80987 * 1024 ** 2, source: 'nvidia-smi' },
      { name: 'NVIDIA RTX A1000, Laptop', memoryBytes: 4096 * 1024 ** 2, freeMemoryBytes: null, source: 'nvidia-smi' },
    ]);
    assert.deepEqual(parseNvidiaSmi('NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.\n'), []);
  });

  it('measures memory, free disk where models are kept, and the GPU through the nvidia-smi on the PATH', async function () {
    if (process.platform === 'win32') this.skip(); // the stand-in tool below is a shell script
    const tmp = temporaryDir('machine');
    const savedPath = process.env.PATH;
    try {
      // A stand-in for the driver's tool: a real program on the PATH that answers the query the engine sends.
      const bin = path.join(tmp, 'bin');
      fs.mkdirSync(bin);
      fs.writeFileSync(
        path.join(bin, 'nvidia-smi'),
        '#!/bin/sh\n[ "$1" = "--query-gpu=name,memory.total,memory.free" ] && [ "$2" = "--format=csv,noheader,nounits" ] || exit 9\necho "NVIDIA GeForce RTX 4060, 8188, 7900"\n',
        { mode: 0o755 },
      );
      process.env.PATH = `${bin}${path.delimiter}${savedPath}`;
      const facts = await measureMachine(path.join(tmp, 'not-yet', 'models'));
      assert.equal(facts.totalMemoryBytes, os.totalmem());
      assert.ok(facts.availableMemoryBytes > 0 && facts.availableMemoryBytes <= facts.totalMemoryBytes);
      assert.ok(facts.freeDiskBytes !== null && facts.freeDiskBytes > 0, 'free space of the nearest existing parent');
      assert.deepEqual(facts.gpus, [{ name: 'NVIDIA GeForce RTX 4060', memoryBytes: 8188 * 1024 ** 2, freeMemoryBytes: 7900 * 1024 ** 2, source: 'nvidia-smi' }]);
      assert.ok(facts.gpuDevices.length > 0 && facts.gpuDevices.every((d) => d.usable || (d.reason ?? '').length > 0));
      assert.ok(facts.totalMemoryBytes > 0.5 * GIB);
    } finally {
      process.env.PATH = savedPath;
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
