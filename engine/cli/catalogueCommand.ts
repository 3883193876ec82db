/**
 * `dlm catalogue`: the models DLM: Choose Model offers (engine/store/modelCatalogue.ts), with the sizes the
 * picker shows and what of each is on this machine, as a Markdown table (or JSON).
 */
import { modelCatalogue } from '../store/modelCatalogue';
import { DEVICE_OPTIONS, type CatalogueModel, type DeviceOption } from '../../common/protocol';
import { defaultCacheDir } from './cacheDir';
import { EXIT_OK, stringOption, type CliCommand } from './command';

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;
const params = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : `${(n / 1e6).toFixed(1)}M`);

function table(models: CatalogueModel[]): string {
  const rows = models.map((m) =>
    [
      m.id,
      params(m.parameters),
      m.downloadBytes ? gb(m.downloadBytes) : '-',
      `${m.memory.gpu.precision} ${gb(m.memory.gpu.totalBytes)}`,
      `${m.memory.cpu.precision} ${gb(m.memory.cpu.totalBytes)}`,
      gb(m.memory.gpu.kvCacheBytes),
      m.infillScore ? String(m.infillScore.value) : '',
      m.licence,
      m.local.ready ? 'ready' : m.local.downloadComplete ? 'downloaded' : m.local.downloadedBytes > 0 ? `partial (${gb(m.local.downloadedBytes)})` : '',
    ].join(' | '),
  );
  return [
    '| model | parameters | download | memory on a GPU | memory on the CPU | of it K/V (GPU) | HumanEval-Infill | licence | here |',
    '|---|---:|---:|---:|---:|---:|---:|---|---|',
    ...rows.map((r) => `| ${r} |`),
  ].join('\n');
}

export const catalogueCommand: CliCommand = {
  name: 'catalogue',
  summary: 'List the models the editor offers, with download size, memory per device and licence.',
  synopsis: '[--device <device>] [--cache-dir <dir>] [--json]',
  details:
    'Memory is computed from each model\'s geometry at the precision it is converted to for the device (int4 above 2B ' +
    'parameters, else fp16 on GPUs and int8 on the CPU): weights, the K/V cache of a 2,048-token canvas, and the working ' +
    'memory of a full pass over it. "here" says what is in the cache folder for --device.',
  options: {
    device: { type: { choices: DEVICE_OPTIONS }, description: 'The device the "here" column is for.', defaultText: 'auto' },
    'cache-dir': { type: 'string', description: 'Where downloaded and converted models are kept.', defaultText: '$DLM_CACHE_DIR or ~/.cache/dlm-complete' },
    json: { type: 'boolean', description: 'Print the catalogue as JSON.' },
  },
  async run({ options }) {
    const models = modelCatalogue(stringOption(options, 'cache-dir') ?? defaultCacheDir(), (stringOption(options, 'device') ?? 'auto') as DeviceOption);
    process.stdout.write(options.json ? `${JSON.stringify(models, null, 2)}\n` : `${table(models)}\n`);
    return EXIT_OK;
  },
};
