/**
 * How a server-side model is asked to fill a hole, per model family, in one place: a server generates after a
 * prompt, so the code before and after the cursor go into a fill-in-the-middle prompt (the model's own FIM
 * tokens where it has them, else an instruction in its chat format with the hole marked), and the answer is
 * cut where the hole ends. The local engine needs no prompt (it denoises masks between prefix and suffix), but
 * its families are here too, with the end tokens the converter uses (common/modelFamilies.ts), so a model
 * served by a team server is asked the same way whatever runs it.
 *
 * No template puts the model's begin-of-text token first: vLLM's /v1/completions and SGLang's /generate
 * tokenize the prompt with the tokenizer's own special tokens added.
 *
 * Sources of the formats: Qwen ChatML as in DiffuCoder's README (research/models-and-runtime.md A.2); LLaDA's
 * Llama-3-style turns (ibid., LLaDA); LLaDA 2.x's role tags as in SGLang's diffusion language model docs;
 * Gemma 4's turns as in Google's "Gemma 4 prompt formatting"; Qwen2.5-Coder's FIM tokens for Open-dCoder, a
 * Qwen2.5-Coder-0.5B derivative whose tokenizer keeps them (whether its diffusion training kept the FIM skill is
 * not published).
 */
import { endTokenContents } from '../modelFamilies';

export const PROMPT_TEMPLATE_IDS = ['dream', 'qwen2', 'coda', 'llada', 'llada2', 'gemma4'] as const;
export type PromptTemplateId = (typeof PROMPT_TEMPLATE_IDS)[number];

export interface InfillHole {
  prefix: string;
  suffix: string;
  /** False in the middle of a line: the answer is the rest of that line only. */
  multiline: boolean;
  /** The code's language (a VS Code language id or a file extension), named in instructions. */
  language?: string;
}

export interface InfillPromptTemplate {
  id: PromptTemplateId;
  /** Which models it is for, in settings and messages. */
  description: string;
  /** Model names (Hugging Face ids, served names) it is chosen for when the setting is `auto`. */
  models: RegExp;
  /** `fim`: the model's fill-in-the-middle tokens; `instruction`: asked in its chat format, the hole marked. */
  style: 'fim' | 'instruction';
  prompt(hole: InfillHole): string;
  /** What the model writes when its answer is over: sent as stop strings, and cut at. */
  endStrings: readonly string[];
}

/** Marks the hole in an instruction; plain text, so no tokenizer reads it as one of its special tokens. */
export const HOLE_MARK = '<FILL_HERE>';

function instruction(hole: InfillHole): string {
  const language = hole.language ? `${hole.language} ` : '';
  const extent = hole.multiline ? 'one or more lines' : 'the rest of that line only';
  return (
    `Fill in the code at ${HOLE_MARK} in this ${language}file. Reply with only the code that replaces ${HOLE_MARK} ` +
    `(${extent}): no explanation, no markdown, nothing that comes before or after it.\n\n` +
    `\`\`\`${hole.language ?? ''}\n${hole.prefix}${HOLE_MARK}${hole.suffix}\n\`\`\``
  );
}

const chatMl = (hole: InfillHole) =>
  `<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n${instruction(hole)}<|im_end|>\n<|im_start|>assistant\n`;

const TEMPLATES: readonly InfillPromptTemplate[] = [
  {
    id: 'llada2',
    description: 'LLaDA 2.x (LLaDA2.0/2.1 mini and flash, e.g. on SGLang)',
    models: /llada-?2/i,
    style: 'instruction',
    prompt: (hole) => `<role>SYSTEM</role>detailed thinking off<|role_end|><role>HUMAN</role>${instruction(hole)}<|role_end|><role>ASSISTANT</role>`,
    endStrings: ['<|role_end|>', '<|endoftext|>'],
  },
  {
    id: 'llada',
    description: 'LLaDA, LLaDA 1.5 (Instruct)',
    models: /llada/i,
    style: 'instruction',
    prompt: (hole) =>
      `<|start_header_id|>user<|end_header_id|>\n\n${instruction(hole)}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n`,
    endStrings: endTokenContents('llada'),
  },
  {
    id: 'gemma4',
    description: 'DiffusionGemma and other Gemma 4 models (e.g. on vLLM)',
    models: /diffusion-?gemma|gemma-?4/i,
    style: 'instruction',
    prompt: (hole) => `<|turn>user\n${instruction(hole)}<turn|>\n<|turn>model\n`,
    endStrings: ['<turn|>', '<eos>'],
  },
  {
    id: 'coda',
    description: 'CoDA (Instruct)',
    models: /(^|[/_-])coda([-_.]|$)/i,
    style: 'instruction',
    prompt: chatMl,
    endStrings: endTokenContents('coda'),
  },
  {
    id: 'dream',
    description: 'Dream, Dream-Coder, DiffuCoder (Instruct)',
    models: /dream|diffucoder/i,
    style: 'instruction',
    prompt: chatMl,
    endStrings: endTokenContents('dream'),
  },
  {
    id: 'qwen2',
    description: 'Open-dCoder (Qwen2.5-Coder fill-in-the-middle tokens)',
    models: /open-?dcoder/i,
    style: 'fim',
    prompt: (hole) => `<|fim_prefix|>${hole.prefix}<|fim_suffix|>${hole.suffix}<|fim_middle|>`,
    endStrings: endTokenContents('qwen2'),
  },
];

export function promptTemplate(id: PromptTemplateId): InfillPromptTemplate {
  return TEMPLATES.find((t) => t.id === id)!;
}

/** The template for a model name (the first that matches, most specific first), if any. */
export function templateForModel(...names: (string | undefined)[]): InfillPromptTemplate | undefined {
  for (const template of TEMPLATES) {
    if (names.some((name) => name !== undefined && template.models.test(name))) return template;
  }
  return undefined;
}

export function describeTemplates(): string {
  return TEMPLATES.map((t) => `${t.id} (${t.description})`).join(', ');
}

/** The answer so far: what may be shown, and whether it is over (the rest of the server's answer is not wanted). */
export interface AnswerSoFar {
  text: string;
  complete: boolean;
}

const CLOSING_FENCE = '\n```';
const HAS_WORD = /[\p{L}\p{N}]/u;

/**
 * Cuts a streamed answer to what fills the hole: up to the model's end of answer, the end of the line for a
 * mid-line hole, the line where the model starts writing the code after the hole again; for instruction answers
 * also without a markdown fence and without a repeat of the hole's line before the cursor. While streaming,
 * text that may still turn out to be cut (the start of an end string, a fence, a repeat) is held back, so what
 * is shown never has to be taken back.
 */
export class AnswerCutter {
  private raw = '';
  private readonly stops: string[];
  /** The hole's line before the cursor, which instruction answers often repeat. */
  private readonly lineBefore: string;
  /** The first line after the hole with a word in it, which a model may write again at the end of its answer. */
  private readonly nextLine: string | undefined;

  constructor(
    private readonly template: InfillPromptTemplate,
    private readonly hole: InfillHole,
  ) {
    this.stops = [...template.endStrings, ...(template.style === 'instruction' ? [CLOSING_FENCE] : [])];
    this.lineBefore = hole.prefix.slice(hole.prefix.lastIndexOf('\n') + 1);
    const after = hole.suffix.split('\n').slice(1);
    this.nextLine = after.map((line) => line.trim()).find((line) => line !== '' && HAS_WORD.test(line));
  }

  /** Adds streamed text; returns the answer so far. */
  push(text: string): AnswerSoFar {
    this.raw += text;
    return this.cut(false);
  }

  /** The final answer, once the server's answer ended. */
  finish(): string {
    return this.cut(true).text;
  }

  private cut(final: boolean): AnswerSoFar {
    let text = this.raw;
    const instructed = this.template.style === 'instruction';
    if (instructed) {
      const open = /^[ \t]*```[^\n]*\n/.exec(text);
      if (open) text = text.slice(open[0].length);
      else if (!final && !text.includes('\n') && '```'.startsWith(text.trimStart().slice(0, 3))) {
        return { text: '', complete: false }; // may be the opening fence
      }
      if (!this.hole.multiline) text = text.replace(/^(?:[ \t]*\n)+/, '');
    }
    let complete = false;
    const stops = this.hole.multiline ? this.stops : [...this.stops, '\n'];
    const at = earliest(text, stops);
    if (at !== undefined) {
      text = text.slice(0, at);
      complete = true;
    } else if (!final) {
      text = text.slice(0, text.length - heldBack(text, stops));
    }
    if (instructed && this.lineBefore !== '') {
      const repeat = this.repeatedLineBefore(text, final || complete);
      if (repeat === undefined) return { text: '', complete: false };
      text = text.slice(repeat);
    }
    if (this.hole.multiline && this.nextLine !== undefined) {
      const lines = text.split('\n');
      // The last line is complete only when the answer is over.
      const whole = final || complete ? lines.length : lines.length - 1;
      const repeatAt = lines.findIndex((line, i) => i < whole && line.trim() === this.nextLine);
      if (repeatAt !== -1) return { text: lines.slice(0, repeatAt).join('\n'), complete: true };
      if (!final && !complete && this.nextLine.startsWith(lines[lines.length - 1].trim()) && lines[lines.length - 1].trim() !== '') {
        text = lines.slice(0, -1).join('\n');
      }
    }
    return { text, complete };
  }

  /**
   * How much of the answer's start repeats the hole's line before the cursor (0 for none), or undefined while
   * the answer is too short to tell.
   */
  private repeatedLineBefore(text: string, over: boolean): number | undefined {
    const line = this.lineBefore;
    if (text.startsWith(line)) return line.length;
    const words = line.trimStart();
    const answer = text.trimStart();
    if (words !== '' && answer.startsWith(words)) return text.length - answer.length + words.length;
    const undecided = text !== '' && (line.startsWith(text) || (words !== '' && answer !== '' && words.startsWith(answer)));
    return undecided && !over ? undefined : 0;
  }
}

/** The index of the first of `stops` in `text`, if any. */
function earliest(text: string, stops: readonly string[]): number | undefined {
  let first: number | undefined;
  for (const stop of stops) {
    const at = text.indexOf(stop);
    if (at !== -1 && (first === undefined || at < first)) first = at;
  }
  return first;
}

/** The length of the longest end of `text` that is the start of a stop (it may become one). */
function heldBack(text: string, stops: readonly string[]): number {
  let longest = 0;
  for (const stop of stops) {
    for (let k = Math.min(stop.length - 1, text.length); k > longest; k--) {
      if (text.endsWith(stop.slice(0, k))) {
        longest = k;
        break;
      }
    }
  }
  return longest;
}
