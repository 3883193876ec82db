/**
 * The code diffusion models the converter supports, described once: their Hugging Face ids, the config.json
 * geometry the converter reads (values from /work/shared/research/models-and-runtime.md, Part A, which cites
 * each model's config), the dtype their weights are stored in, their licence and, where published, their infill
 * score. Everything else is computed with the converter's own code: the architecture (families.ts), the
 * parameter count, the download (parameters times bytes per stored weight), the converted folder and the
 * memory at each precision (memoryEstimate.ts). So every size is "about", and computed, never typed in.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { estimateConvertedBytes } from '../convert/convert';
import { detectFamily, type HfConfig } from '../convert/families';
import type { CatalogueModel, DeviceOption } from '../../common/protocol';
import { parameterCount, type ModelArchitecture } from '../architecture/architecture';
import { COMPLETE_MARKER, parseHubModelId } from './huggingFaceHub';
import { readManifest } from '../model/manifest';
import { memoryNeed, variantBytes } from './memoryEstimate';
import { BUILTIN_SETTING, builtinModelDir, conversionFor, findConvertedHubModel, hubDownloadDir, isModelFolder } from './modelManager';
import { folderBytes } from './modelStore';

interface CatalogueEntry {
  id: string;
  name: string;
  description: string;
  licence: string;
  /** The config.json fields the converter reads, as the model's repository publishes them. */
  config: HfConfig;
  /** Bytes per weight as stored in the checkpoint's safetensors (its config's torch_dtype). */
  storedBytesPerWeight: 2 | 4;
  infillScore?: { value: number; source: string };
}

/** Qwen2.5-7B geometry, shared by Dream, Dream-Coder and DiffuCoder (DiffuCoder-7B-Instruct's config.json). */
const QWEN25_7B: HfConfig = {
  model_type: 'Dream',
  hidden_size: 3584,
  num_hidden_layers: 28,
  num_attention_heads: 28,
  num_key_value_heads: 4,
  intermediate_size: 18944,
  vocab_size: 152064,
  rope_theta: 1000000,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
  max_position_embeddings: 131072,
};

const OPEN_DLLM_TABLE = 'Open-dLLM README, DreamOn fixed-length protocol (HumanEval-Infill single-line, pass@1)';

const ENTRIES: CatalogueEntry[] = [
  {
    id: 'Dream-org/Dream-Coder-v0-Instruct-7B',
    name: 'Dream-Coder 7B Instruct',
    description: 'The strongest published infill among open diffusion code models; Qwen2.5-Coder-7B geometry.',
    licence: 'Apache-2.0',
    config: QWEN25_7B,
    storedBytesPerWeight: 2,
    infillScore: { value: 55.3, source: `${OPEN_DLLM_TABLE}, "Dream-Coder-7B"` },
  },
  {
    id: 'Dream-org/Dream-Coder-v0-Base-7B',
    name: 'Dream-Coder 7B Base',
    description: 'The base model behind Dream-Coder Instruct, for raw infilling.',
    licence: 'Apache-2.0 (the Dream-Coder repository; the Base weights card was not checked)',
    config: QWEN25_7B,
    storedBytesPerWeight: 2,
    infillScore: { value: 55.3, source: `${OPEN_DLLM_TABLE}, "Dream-Coder-7B"` },
  },
  {
    id: 'apple/DiffuCoder-7B-Instruct',
    name: 'DiffuCoder 7B Instruct',
    description: "Apple's code diffusion model on Dream's architecture.",
    licence: 'not stated on the card (Apple ML research licence on cpGRPO): research use',
    config: QWEN25_7B,
    storedBytesPerWeight: 2,
    infillScore: { value: 54.8, source: `${OPEN_DLLM_TABLE}, "DiffuCoder-7B"` },
  },
  {
    id: 'GSAI-ML/LLaDA-8B-Instruct',
    name: 'LLaDA 8B Instruct',
    description: 'General diffusion model without grouped-query attention: its K/V cache is 9x larger than Dream\'s.',
    licence: 'MIT',
    config: {
      model_type: 'llada',
      d_model: 4096,
      n_layers: 32,
      n_heads: 32,
      n_kv_heads: 32,
      mlp_hidden_size: 12288,
      embedding_size: 126464,
      // The converter sizes the table by embedding_size; vocab_size is only its fallback.
      vocab_size: 126464,
      rms_norm_eps: 1e-5,
      include_qkv_bias: false,
      max_sequence_length: 4096,
      block_type: 'llama',
    },
    storedBytesPerWeight: 2,
    infillScore: { value: 48.3, source: `${OPEN_DLLM_TABLE}, "LLaDA-8B"` },
  },
  {
    id: 'Dream-org/Dream-v0-Instruct-7B',
    name: 'Dream 7B Instruct',
    description: 'The general-purpose Dream model (Qwen2.5-7B geometry).',
    licence: 'Apache-2.0 (the Dream repository; the weights card was not checked)',
    config: QWEN25_7B,
    storedBytesPerWeight: 2,
    infillScore: { value: 39.4, source: `${OPEN_DLLM_TABLE}, "Dream-7B"` },
  },
  {
    id: 'Salesforce/CoDA-v0-Instruct',
    name: 'CoDA 1.7B Instruct',
    description: "Salesforce's small code diffusion model (Qwen3-1.7B geometry); stored in float32.",
    licence: 'CC BY-NC 4.0 (non-commercial)',
    config: {
      model_type: 'CoDA',
      hidden_size: 2048,
      num_hidden_layers: 28,
      num_attention_heads: 16,
      head_dim: 128,
      num_key_value_heads: 8,
      intermediate_size: 6144,
      vocab_size: 151936,
      rope_theta: 1000000,
      rms_norm_eps: 1e-6,
      attention_bias: false,
      max_position_embeddings: 40960,
    },
    storedBytesPerWeight: 4,
  },
  {
    id: 'fredzzp/open-dcoder-0.5B',
    name: 'Open-dCoder 0.5B',
    description: 'A small code diffusion model (Qwen2.5-Coder-0.5B geometry): for CPUs and small GPUs.',
    licence: 'Apache-2.0 (the Open-dLLM repository; the weights card was not checked)',
    config: {
      model_type: 'qwen2',
      hidden_size: 896,
      num_hidden_layers: 24,
      num_attention_heads: 14,
      num_key_value_heads: 2,
      intermediate_size: 4864,
      vocab_size: 151936,
      rope_theta: 1000000,
      rms_norm_eps: 1e-6,
      tie_word_embeddings: true,
    },
    // Its dtype was not read from the checkpoint; bf16 as its Qwen2.5-Coder base publishes it.
    storedBytesPerWeight: 2,
    infillScore: { value: 32.5, source: `${OPEN_DLLM_TABLE}, "Open-dCoder-0.5B"` },
  },
];

/** The Hugging Face ids of the catalogue, in its order. */
export const CATALOGUE_IDS: readonly string[] = ENTRIES.map((e) => e.id);

/** The catalogue with sizes, and what of each model is on this machine already (`ready` for `device`). */
export function modelCatalogue(cacheDir: string, device: DeviceOption): CatalogueModel[] {
  const builtin = builtinEntry();
  return [...(builtin ? [builtin] : []), ...ENTRIES.map((entry) => hubEntry(entry, cacheDir, device))];
}

function hubEntry(entry: CatalogueEntry, cacheDir: string, device: DeviceOption): CatalogueModel {
  const arch = detectFamily(entry.config).architecture(entry.config);
  const parameters = parameterCount(arch);
  const id = parseHubModelId(entry.id)!;
  const downloadDir = hubDownloadDir(cacheDir, id);
  const sizes = deviceSizes(arch, parameters);
  return {
    id: entry.id,
    name: entry.name,
    description: entry.description,
    parameters,
    licence: entry.licence,
    downloadBytes: parameters * entry.storedBytesPerWeight,
    convertedBytes: { gpu: sizes.gpu.converted, cpu: sizes.cpu.converted },
    memory: { gpu: sizes.gpu.memory, cpu: sizes.cpu.memory },
    ...(entry.infillScore ? { infillScore: entry.infillScore } : {}),
    local: {
      ready: findConvertedHubModel(id, { cacheDir, device }) !== undefined,
      downloadedBytes: folderBytes(downloadDir),
      downloadComplete: fs.existsSync(path.join(downloadDir, COMPLETE_MARKER)),
    },
  };
}

/** What a checkpoint is converted to for a GPU and for the CPU (modelManager.conversionFor), and its sizes. */
function deviceSizes(arch: ModelArchitecture, parameters: number) {
  const sized = (device: 'cuda' | 'cpu') => {
    const graph = conversionFor(parameters, device);
    return { converted: estimateConvertedBytes(arch, graph.precision), memory: memoryNeed(arch, graph) };
  };
  return { gpu: sized('cuda'), cpu: sized('cpu') };
}

/** The built-in model: shipped converted, one variant for every device (absent when sources run unbuilt). */
function builtinEntry(): CatalogueModel | null {
  const dir = builtinModelDir();
  if (!isModelFolder(dir)) return null;
  const manifest = readManifest(dir);
  const variant = manifest.variants[0];
  const weightBytes = variantBytes(dir, variant);
  const memory = memoryNeed(manifest.architecture, variant, { weightBytes, canvasTokens: manifest.architecture.maxPositions });
  return {
    id: BUILTIN_SETTING,
    name: 'Built-in demo model',
    description: 'A 5M-parameter model trained by this project: no download, any CPU; it writes plausible-looking, not correct, code.',
    parameters: parameterCount(manifest.architecture),
    licence: 'Apache-2.0 (this project)',
    downloadBytes: 0,
    convertedBytes: { gpu: folderBytes(dir), cpu: folderBytes(dir) },
    memory: { gpu: memory, cpu: memory },
    local: { ready: true, downloadedBytes: 0, downloadComplete: true },
  };
}
