import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { modelCatalogue } from '../../../engine/store/modelCatalogue';
import type { CatalogueModel, MachineFacts } from '../../../common/protocol';
import { modelVerdict, recommendedModel } from '../../../extension/modelVerdicts';
import { temporaryDir } from '../../engine/graphTestSupport';
import { GB, machine } from '../machineFacts';

const DREAM_CODER = 'Dream-org/Dream-Coder-v0-Instruct-7B';
const OPEN_DCODER = 'fredzzp/open-dcoder-0.5B';

const nvidia = (freeGb: number, usable = true): Partial<MachineFacts> => ({
  gpus: [{ name: 'NVIDIA GeForce RTX 4060', memoryBytes: 8.6 * GB, freeMemoryBytes: freeGb * GB, source: 'nvidia-smi' }],
  gpuDevices: [{ device: 'cuda', usable, ...(usable ? {} : { reason: "onnxruntime-node's CUDA provider is not installed" }) }],
});

describe('model picker verdicts (made-up machines, the real catalogue)', () => {
  let catalogue: CatalogueModel[];
  const byId = (id: string) => catalogue.find((m) => m.id === id)!;
  before(() => {
    const saved = process.env.DLM_BUILTIN_MODEL;
    process.env.DLM_BUILTIN_MODEL = path.resolve(__dirname, '../../../dist/models/builtin');
    catalogue = modelCatalogue(temporaryDir('verdicts'), 'auto');
    if (saved === undefined) delete process.env.DLM_BUILTIN_MODEL;
    else process.env.DLM_BUILTIN_MODEL = saved;
  });

  it('an 8 GB NVIDIA GPU takes a 7B model in int4, and the best infill model is recommended', () => {
    const laptop = machine(nvidia(7.9));
    const verdict = modelVerdict(byId(DREAM_CODER), laptop);
    assert.equal(verdict.kind, 'gpu');
    assert.equal(verdict.need.precision, 'int4');
    assert.match(verdict.summary, /^fits on the GPU \(NVIDIA GeForce RTX 4060: needs 5\.\d+ GB in int4, 7\.90 GB free\)$/);
    assert.equal(recommendedModel(catalogue, laptop), DREAM_CODER);
  });

  it('a GPU that fits but that onnxruntime cannot use yet asks for the GPU set-up', () => {
    const verdict = modelVerdict(byId(DREAM_CODER), machine(nvidia(7.9, false)));
    assert.equal(verdict.gpuNeedsSetup, true);
    assert.match(verdict.summary, /once GPU acceleration is set up$/);
  });

  it('without a GPU a 7B model fits in RAM, but a small model is recommended for the CPU', () => {
    const desktop = machine({});
    assert.equal(modelVerdict(byId(DREAM_CODER), desktop).kind, 'cpu');
    assert.match(modelVerdict(byId(OPEN_DCODER), desktop).summary, /^fits in RAM on the CPU \(needs \d\.\d+ GB in int8, 24\.0 GB free\)$/);
    assert.equal(recommendedModel(catalogue, desktop), OPEN_DCODER);
  });

  it('too large for a small machine, saying how much is needed and free; a 2 GB GPU sends a 7B to the CPU', () => {
    const small = machine({ availableMemoryBytes: 3.5 * GB });
    const dream = modelVerdict(byId(DREAM_CODER), small);
    assert.equal(dream.kind, 'tooLarge');
    assert.match(dream.summary, /^too large: needs 6\.\d+ GB \(5\.\d+ GB on a GPU\); 3\.50 GB of RAM free$/);
    assert.equal(modelVerdict(byId(OPEN_DCODER), small).kind, 'cpu');
    const tinyGpu = modelVerdict(byId(DREAM_CODER), machine(nvidia(2)));
    assert.equal(tinyGpu.kind, 'cpu');
    assert.match(tinyGpu.summary, /too large for the GPU's 2\.00 GB$/);
  });

  it('a full disk rules a model out of the recommendation, and nothing fitting leaves the built-in model', () => {
    const fullDisk = machine({ ...nvidia(7.9), freeDiskBytes: 3 * GB });
    const dream = modelVerdict(byId(DREAM_CODER), fullDisk);
    assert.equal(dream.diskShort, true);
    assert.ok(dream.diskNeededBytes > 15 * GB);
    assert.equal(recommendedModel(catalogue, fullDisk), OPEN_DCODER);
    assert.equal(recommendedModel(catalogue, machine({ availableMemoryBytes: 0.5 * GB, freeDiskBytes: 0 })), 'builtin');
    assert.equal(modelVerdict(byId('builtin'), machine({ freeDiskBytes: 0 })).diskShort, false, 'the built-in model needs no disk');
  });
});
