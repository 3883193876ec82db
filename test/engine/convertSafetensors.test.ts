import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16, float32ToF16Bits } from '../../engine/graph/floatFormats';
import {
  SafetensorsCheckpoint, SafetensorsFile, writeSafetensors, writeShardedSafetensors, INDEX_FILE,
} from '../../engine/convert/safetensors';
import { seeded } from './graphTestSupport';

/** A safetensors file with a hand-written header, to produce corrupt ones. */
function writeRaw(file: string, header: unknown, dataBytes: number, headerText?: string) {
  const json = Buffer.from(headerText ?? JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([length, json, Buffer.alloc(dataBytes)]));
}

describe('16-bit float formats', () => {
  it('fp16: every finite half survives half → float32 → half exactly', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const back = float32ToF16(f16ToFloat32(all));
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN) assert.ok(Number.isNaN(f16ToFloat32(new Uint16Array([back[h]]))[0]));
      else assert.equal(back[h], h, `half 0x${h.toString(16)}`);
    }
  });

  it('fp16: rounds to nearest even, keeps subnormals, clamps overflow unless asked not to', () => {
    assert.equal(float32ToF16Bits(65504), 0x7bff);
    assert.equal(float32ToF16Bits(70000), 0x7bff);
    assert.equal(float32ToF16Bits(-1e9), 0xfbff);
    assert.equal(float32ToF16Bits(70000, false), 0x7c00);
    assert.equal(float32ToF16Bits(Infinity), 0x7c00); // infinity is not an overflow
    assert.equal(float32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie → even (down)
    assert.equal(float32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie → even (up)
    assert.equal(float32ToF16Bits(2 ** -24), 0x0001);
    assert.equal(float32ToF16Bits(2 ** -25), 0x0000); // tie → even zero
    assert.equal(float32ToF16Bits(1.5 * 2 ** -25), 0x0001);
    assert.equal(float32ToF16Bits(65520), 0x7bff); // rounds up past the largest half: clamped
  });

  it('bf16: every bfloat16 survives a round trip; float32 → bf16 rounds to nearest even', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const back = float32ToBf16(bf16ToFloat32(all));
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
      if (!isNaN) assert.equal(back[h], h);
    }
    const v = new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20]);
    assert.deepEqual([...float32ToBf16(v)], [0x3f80, 0x3f82, 0x3f81]);
  });
});

describe('safetensors', () => {
  let tmp: string;
  beforeEach(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dlm-st-'))));
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('reads F32, F16 and BF16 tensors one by one as float32', async () => {
    const a = seeded(6, 1);
    const b = seeded(12, 2, 100);
    const c = seeded(5, 3, 1e-3);
    const file = path.join(tmp, 'model.safetensors');
    writeSafetensors(file, [
      { name: 'a', dtype: 'F32', shape: [2, 3], data: a },
      { name: 'b', dtype: 'F16', shape: [3, 4], data: b },
      { name: 'c', dtype: 'BF16', shape: [5], data: c },
    ], { format: 'pt' });
    const st = await SafetensorsFile.open(file);
    try {
      assert.deepEqual(st.metadata, { format: 'pt' });
      assert.deepEqual(st.entry('b').shape, [3, 4]);
      assert.deepEqual(await st.readFloat32('a'), a);
      assert.deepEqual(await st.readFloat32('b'), f16ToFloat32(float32ToF16(b)));
      assert.deepEqual(await st.readFloat32('c'), bf16ToFloat32(float32ToBf16(c)));
      // Data starts 8-byte aligned, as the reference writer pads the header.
      assert.equal(st.entry('a').start % 8, 0);
      await assert.rejects(st.readFloat32('zzz'), /no tensor named zzz/);
    } finally {
      await st.close();
    }
  });

  it('reads a sharded checkpoint through its index and checks the index against the shards', async () => {
    const tensors = [0, 1, 2, 3, 4].map((i) => ({ name: `t${i}`, dtype: 'BF16' as const, shape: [4, 4], data: seeded(16, i) }));
    const files = writeShardedSafetensors(tmp, tensors, 70);
    assert.equal(files.length, 3);
    const ckpt = await SafetensorsCheckpoint.open(tmp);
    try {
      assert.deepEqual(ckpt.names().sort(), ['t0', 't1', 't2', 't3', 't4']);
      assert.equal(ckpt.dataBytes(), 5 * 16 * 2);
      for (const t of tensors) assert.deepEqual(await ckpt.readFloat32(t.name), bf16ToFloat32(float32ToBf16(t.data)));
    } finally {
      await ckpt.close();
    }
    const index = JSON.parse(fs.readFileSync(path.join(tmp, INDEX_FILE), 'utf8'));
    index.weight_map.t0 = files[1];
    fs.writeFileSync(path.join(tmp, INDEX_FILE), JSON.stringify(index));
    await assert.rejects(SafetensorsCheckpoint.open(tmp), /places t0 in model-00002-of-00003.safetensors, but that shard does not hold it/);
    index.weight_map.t0 = files[0];
    fs.writeFileSync(path.join(tmp, INDEX_FILE), JSON.stringify(index));
    fs.rmSync(path.join(tmp, files[2]));
    await assert.rejects(SafetensorsCheckpoint.open(tmp), /shard model-00003-of-00003.safetensors named in model.safetensors.index.json is missing/);
  });

  it('refuses corrupt and truncated files with a message saying what is wrong', async () => {
    const file = path.join(tmp, 'x.safetensors');
    const ok = { w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } };
    const cases: [string, () => void, RegExp][] = [
      ['empty', () => fs.writeFileSync(file, Buffer.alloc(3)), /truncated \(3 bytes/],
      ['huge header length', () => fs.writeFileSync(file, Buffer.from([0, 0, 0, 0, 0, 0, 1, 0])), /corrupt header length/],
      ['header cut', () => { writeRaw(file, ok, 16); fs.truncateSync(file, 20); }, /truncated \(header of \d+ bytes, file of 20 bytes\)/],
      ['bad JSON', () => writeRaw(file, null, 0, '{"w": {'), /header is not valid JSON/],
      ['not an object', () => writeRaw(file, [1, 2], 0), /header is not a JSON object/],
      ['unknown dtype', () => writeRaw(file, { w: { dtype: 'F12', shape: [1], data_offsets: [0, 2] } }, 2), /tensor w has unknown dtype "F12"/],
      ['bad shape', () => writeRaw(file, { w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4), /invalid shape/],
      ['size mismatch', () => writeRaw(file, { w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, 16), /span 12 bytes but F32\[2,2\] needs 16/],
      ['beyond the file', () => { writeRaw(file, ok, 16); fs.truncateSync(file, fs.statSync(file).size - 1); }, /ends at byte 16 of the data but the file holds only 15 \(truncated download\?\)/],
      ['overlap', () => writeRaw(file, { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12), /tensors a and b overlap/],
    ];
    for (const [label, make, message] of cases) {
      make();
      await assert.rejects(SafetensorsFile.open(file), message, label);
    }
  });

  it('reads a non-float tensor only as bytes, and says why not as floats', async () => {
    const file = path.join(tmp, 'i.safetensors');
    writeRaw(file, { ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, 16);
    const st = await SafetensorsFile.open(file);
    try {
      assert.equal((await st.readBytes('ids')).length, 16);
      await assert.rejects(st.readFloat32('ids'), /dtype I64; only F32, F16 and BF16 can be converted/);
    } finally {
      await st.close();
    }
  });

  it('finds no checkpoint in an empty folder, and says so', async () => {
    await assert.rejects(SafetensorsCheckpoint.open(tmp), /no model.safetensors, model.safetensors.index.json or other .safetensors file/);
  });
});
