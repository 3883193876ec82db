/**
 * The `dlm.*` settings: read, validated, and turned into what the rest of the extension uses.
 * A bad value never stops the extension: it is reported with a clear message and replaced by a safe
 * fallback (the model's own default for decoding options, the manifest default for everything else).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { DEVICE_OPTIONS, type DeviceOption } from '../common/protocol';
import { PROMPT_TEMPLATE_IDS, type PromptTemplateId } from '../common/teamServer/infillPrompts';
import { SERVER_APIS, type ServerApi } from '../common/teamServer/serverApis';
import {
  DECODING_OPTION_NAMES,
  DECODING_OPTION_SCHEMA,
  expectedValue,
  isValidOptionValue,
  type DecodingOptions,
} from '../common/decodingOptions';
import { PROMPT_REUSE_MODES, type PromptReuseMode } from '../common/protocol';

export const SECTION = 'dlm';

export const BACKENDS = ['local', 'remote'] as const;
export type BackendKind = (typeof BACKENDS)[number];

/** `dlm.server.*`: the team server the remote backend asks. */
export interface ServerSettings {
  url: string;
  api: ServerApi;
  /** '' for the one model the server serves. */
  model: string;
  promptTemplate: PromptTemplateId | 'auto';
  allowInsecureHttp: boolean;
  timeoutMs: number;
}

export interface DlmSettings {
  /** Who fills: the local engine or a team's inference server. */
  backend: BackendKind;
  server: ServerSettings;
  /** `builtin`, an absolute model folder path, or a Hugging Face id (passed through as it is). */
  model: string;
  device: DeviceOption;
  /** Only the decoding options the user set; everything else is the model's own default. */
  decoding: Partial<DecodingOptions>;
  /** Masks at the cursor when the completion may span several lines. */
  fillLength: number;
  /** Masks at the cursor in the middle of a line (the completion ends at the line's end). */
  lineFillLength: number;
  /** Budget of the code around the cursor sent as context, in UTF-8 bytes (prefix and suffix together). */
  contextBytes: number;
  /** Inline completion: the expected time of a cold request the context is cut to, in ms (0 = no cut). */
  coldRequestBudgetMs: number;
  debounceMs: number;
  /** Show the partially denoised canvas as ghost text while the engine works. */
  streaming: boolean;
  /** Per language id; `*` is the default for languages not listed. */
  enable: Record<string, boolean>;
  /** A Hugging Face mirror's URL, or '' for the engine's default (HF_ENDPOINT, else huggingface.co). */
  huggingFaceEndpoint: string;
  /** How requests reuse the prompt computed for the document's previous request (or a warm-up), or `off`. */
  promptReuse: PromptReuseSetting;
}

export type PromptReuseSetting = PromptReuseMode | 'off';

export interface SettingProblem {
  key: string;
  message: string;
}

export interface ReadSettings {
  settings: DlmSettings;
  problems: SettingProblem[];
}

/** A validated value, or why the value is not acceptable. */
type Checked<T> = { ok: true; value: T } | { ok: false; reason: string };
type Validator<T> = (value: unknown) => Checked<T>;

const accept = <T>(value: T): Checked<T> => ({ ok: true, value });
const reject = <T>(reason: string): Checked<T> => ({ ok: false, reason });

const integer =
  (min: number, max = Number.MAX_SAFE_INTEGER): Validator<number> =>
  (value) =>
    typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max
      ? accept(value)
      : reject(`is not a whole number from ${min}${max === Number.MAX_SAFE_INTEGER ? ' up' : ` to ${max}`}`);

const oneOf =
  <T extends string>(values: readonly T[]): Validator<T> =>
  (value) =>
    typeof value === 'string' && (values as readonly string[]).includes(value)
      ? accept(value as T)
      : reject(`is not one of ${values.map((v) => `"${v}"`).join(', ')}`);

const endpoint: Validator<string> = (value) =>
  typeof value === 'string' && (value.trim() === '' || /^https?:\/\/\S+$/.test(value.trim()))
    ? accept(value.trim().replace(/\/+$/, ''))
    : reject('is not an http(s) URL such as https://huggingface.co (or empty for the default)');

const boolean: Validator<boolean> = (value) => (typeof value === 'boolean' ? accept(value) : reject('is not true or false'));

const modelName: Validator<string> = (value) =>
  typeof value === 'string' && value.trim() !== ''
    ? accept(value.trim())
    : reject('is not "builtin", a model folder or a Hugging Face id');

const languageSwitches: Validator<Record<string, boolean>> = (value) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return reject('is not an object of language ids to true/false, e.g. {"*": true, "markdown": false}');
  }
  const entries = Object.entries(value as Record<string, unknown>);
  const bad = entries.find(([, on]) => typeof on !== 'boolean');
  return bad ? reject(`has "${bad[0]}" set to something other than true or false`) : accept(Object.fromEntries(entries) as Record<string, boolean>);
};

const text: Validator<string> = (value) => (typeof value === 'string' ? accept(value.trim()) : reject('is not text'));

/** The other settings, with the fallback used when a value is bad (kept equal to package.json's defaults). */
const GENERAL_SETTINGS: { [K in keyof Omit<DlmSettings, 'decoding' | 'server'>]: [Validator<DlmSettings[K]>, DlmSettings[K]] } = {
  backend: [oneOf(BACKENDS), 'local'],
  model: [modelName, 'builtin'],
  device: [oneOf(DEVICE_OPTIONS), 'auto'],
  fillLength: [integer(1, 1024), 32],
  lineFillLength: [integer(1, 256), 16],
  contextBytes: [integer(0, 1 << 20), 4096],
  coldRequestBudgetMs: [integer(0, 60_000), 2000],
  debounceMs: [integer(0, 10_000), 200],
  streaming: [boolean, true],
  enable: [languageSwitches, { '*': true, plaintext: false, markdown: false, scminput: false }],
  huggingFaceEndpoint: [endpoint, ''],
  promptReuse: [oneOf<PromptReuseSetting>([...PROMPT_REUSE_MODES, 'off']), 'full-depth'],
};

/** `dlm.server.<key>`, with the same fallbacks as package.json's defaults. */
const SERVER_SETTINGS: { [K in keyof ServerSettings]: [Validator<ServerSettings[K]>, ServerSettings[K]] } = {
  url: [text, ''],
  api: [oneOf(SERVER_APIS), 'openai'],
  model: [text, ''],
  promptTemplate: [oneOf(['auto', ...PROMPT_TEMPLATE_IDS] as const), 'auto'],
  allowInsecureHttp: [boolean, false],
  timeoutMs: [integer(1000, 600_000), 30_000],
};

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** True when the user (or a workspace) set the key, as opposed to it falling back to package.json's default. */
function isSetByUser(config: vscode.WorkspaceConfiguration, key: string): boolean {
  const inspected = config.inspect(key);
  return (
    inspected !== undefined &&
    (inspected.globalValue !== undefined ||
      inspected.workspaceValue !== undefined ||
      inspected.workspaceFolderValue !== undefined)
  );
}

/**
 * Relative model paths are relative to the first workspace folder (the engine's working directory means
 * nothing to the user) and `~` is the home folder; a name that is no folder there (`builtin`, a Hugging Face
 * id such as `org/model`) passes through as it is.
 */
export function resolveModelSetting(model: string, workspaceFolder: string | undefined): string {
  if (model === 'builtin') return model;
  if (model === '~' || model.startsWith('~/') || model.startsWith('~\\')) return path.join(os.homedir(), model.slice(1));
  if (path.isAbsolute(model) || !workspaceFolder) return model;
  const candidate = path.resolve(workspaceFolder, model);
  return model.startsWith('.') || fs.existsSync(candidate) ? candidate : model;
}

export function readSettings(): ReadSettings {
  const config = vscode.workspace.getConfiguration(SECTION);
  const problems: SettingProblem[] = [];

  const read = (settings: Record<string, [Validator<unknown>, unknown]>, prefix: string): Record<string, unknown> => {
    const values: Record<string, unknown> = {};
    for (const [name, [validate, fallback]] of Object.entries(settings)) {
      const value = config.get(`${prefix}${name}`);
      const checked = value === undefined ? accept(fallback) : validate(value);
      if (checked.ok) {
        values[name] = checked.value;
      } else {
        problems.push({ key: `${SECTION}.${prefix}${name}`, message: `${describe(value)} ${checked.reason}; using ${describe(fallback)}.` });
        values[name] = fallback;
      }
    }
    return values;
  };
  const general = read(GENERAL_SETTINGS as Record<string, [Validator<unknown>, unknown]>, '');
  const server = read(SERVER_SETTINGS as Record<string, [Validator<unknown>, unknown]>, 'server.');
  general.model = resolveModelSetting(general.model as string, vscode.workspace.workspaceFolders?.[0]?.uri.fsPath);

  const decoding: Record<string, unknown> = {};
  for (const option of DECODING_OPTION_NAMES) {
    const key = DECODING_OPTION_SCHEMA[option].setting;
    if (!isSetByUser(config, key)) continue;
    const value = config.get(key);
    if (isValidOptionValue(option, value)) {
      decoding[option] = value;
    } else {
      problems.push({ key: `${SECTION}.${key}`, message: `${describe(value)} is not ${expectedValue(option)}; using the model's default.` });
    }
  }

  return {
    settings: {
      ...(general as Omit<DlmSettings, 'decoding' | 'server'>),
      server: server as unknown as ServerSettings,
      decoding: decoding as Partial<DecodingOptions>,
    },
    problems,
  };
}

export function isEnabledForLanguage(settings: DlmSettings, languageId: string): boolean {
  return settings.enable[languageId] ?? settings.enable['*'] ?? true;
}

/**
 * Where a change of `dlm.<key>` is written: where the user set it (workspace folder, workspace), else the user
 * settings, so a change from a command takes effect instead of being shadowed.
 */
export function settingTarget(key: string): vscode.ConfigurationTarget {
  const inspected = vscode.workspace.getConfiguration(SECTION).inspect(key);
  if (inspected?.workspaceFolderValue !== undefined) return vscode.ConfigurationTarget.WorkspaceFolder;
  if (inspected?.workspaceValue !== undefined) return vscode.ConfigurationTarget.Workspace;
  return vscode.ConfigurationTarget.Global;
}

export function updateSetting(key: string, value: unknown): Thenable<void> {
  return vscode.workspace.getConfiguration(SECTION).update(key, value, settingTarget(key));
}

/** The settings whose change needs the model loaded again (everything else goes with each request). */
export function affectsModel(event: vscode.ConfigurationChangeEvent): boolean {
  return (
    event.affectsConfiguration(`${SECTION}.model`) ||
    event.affectsConfiguration(`${SECTION}.device`) ||
    event.affectsConfiguration(`${SECTION}.huggingFaceEndpoint`)
  );
}

/** The settings whose change needs the server connected again. */
export function affectsServer(event: vscode.ConfigurationChangeEvent): boolean {
  return event.affectsConfiguration(`${SECTION}.server`);
}

/** The reuse fields of an infill or warm-up request for the `dlm.promptReuse` setting. */
export function promptReuseParams(setting: PromptReuseSetting): { reusePrefix: boolean; reuseMode?: PromptReuseMode } {
  return setting === 'off' ? { reusePrefix: false } : { reusePrefix: true, reuseMode: setting };
}
