import * as assert from 'node:assert/strict';
import { AnswerCutter, HOLE_MARK, PROMPT_TEMPLATE_IDS, promptTemplate, templateForModel, type InfillHole, type PromptTemplateId } from '../../common/teamServer/infillPrompts';
import { endTokenContents } from '../../common/modelFamilies';

const hole: InfillHole = { prefix: 'def add(a, b):\n    ', suffix: '\n\nprint(add(1, 2))\n', multiline: true, language: 'python' };

/** Streams `answer` one character at a time; checks that nothing shown is ever taken back; returns the final answer. */
function streamed(id: PromptTemplateId, answer: string, at: InfillHole = hole): { final: string; shown: string[]; completeAt: number | undefined } {
  const cutter = new AnswerCutter(promptTemplate(id), at);
  const shown: string[] = [];
  let completeAt: number | undefined;
  for (let i = 0; i < answer.length; i++) {
    const now = cutter.push(answer[i]);
    if (shown.length === 0 || shown[shown.length - 1] !== now.text) shown.push(now.text);
    if (now.complete && completeAt === undefined) completeAt = i;
  }
  const final = cutter.finish();
  for (const text of shown) assert.ok(final.startsWith(text), `${JSON.stringify(text)} was shown, then taken back (final ${JSON.stringify(final)})`);
  return { final, shown, completeAt };
}

describe('server prompt templates', () => {
  it('chooses the template by the served model name, most specific first', () => {
    const cases: [string, PromptTemplateId][] = [
      ['inclusionAI/LLaDA2.0-mini', 'llada2'],
      ['inclusionAI/LLaDA2.1-flash', 'llada2'],
      ['GSAI-ML/LLaDA-8B-Instruct', 'llada'],
      ['google/diffusiongemma-26B-A4B-it', 'gemma4'],
      ['RedHatAI/diffusiongemma-26B-A4B-it-FP8-dynamic', 'gemma4'],
      ['Dream-org/Dream-Coder-v0-Instruct-7B', 'dream'],
      ['apple/DiffuCoder-7B-cpGRPO', 'dream'],
      ['Salesforce/CoDA-v0-Instruct', 'coda'],
      ['fredzzp/open-dcoder-0.5B', 'qwen2'],
    ];
    for (const [model, id] of cases) assert.equal(templateForModel(model)?.id, id, model);
    assert.equal(templateForModel('meta-llama/Llama-3-8B'), undefined);
    assert.equal(templateForModel('my-renamed-model', 'inclusionAI/LLaDA2.0-mini')?.id, 'llada2', 'the second name (vLLM\'s root) counts too');
  });

  it('covers every family the local engine converts, ending answers at the same end tokens', () => {
    for (const family of ['dream', 'qwen2', 'coda', 'llada'] as const) {
      assert.ok(PROMPT_TEMPLATE_IDS.includes(family));
      assert.deepEqual(promptTemplate(family).endStrings, endTokenContents(family));
    }
  });

  it('puts the code before and after the hole in each model family\'s format', () => {
    const prompt = (id: PromptTemplateId) => promptTemplate(id).prompt(hole);
    assert.equal(prompt('qwen2'), `<|fim_prefix|>${hole.prefix}<|fim_suffix|>${hole.suffix}<|fim_middle|>`);
    assert.match(prompt('llada2'), /^<role>SYSTEM<\/role>detailed thinking off<\|role_end\|><role>HUMAN<\/role>[^]*<\|role_end\|><role>ASSISTANT<\/role>$/);
    assert.match(prompt('gemma4'), /^<\|turn>user\n[^]*<turn\|>\n<\|turn>model\n$/);
    assert.match(prompt('dream'), /^<\|im_start\|>system\n[^]*<\|im_start\|>user\n[^]*<\|im_end\|>\n<\|im_start\|>assistant\n$/);
    assert.match(prompt('llada'), /^<\|start_header_id\|>user<\|end_header_id\|>\n\n[^]*<\|eot_id\|><\|start_header_id\|>assistant<\|end_header_id\|>\n\n$/);
    for (const id of ['llada2', 'gemma4', 'dream', 'coda', 'llada'] as const) {
      assert.ok(prompt(id).includes(`${hole.prefix}${HOLE_MARK}${hole.suffix}`), `${id} shows the code with the hole marked`);
      assert.ok(prompt(id).includes('python'), `${id} names the language`);
    }
    assert.match(promptTemplate('llada2').prompt({ ...hole, multiline: false }), /the rest of that line only/);
  });
});

describe('cutting a streamed answer at the hole\'s end', () => {
  it('stops at the model\'s end of turn, never showing the start of the marker', () => {
    const { final, shown, completeAt } = streamed('llada2', 'return a + b<|role_end|>ignored');
    assert.equal(final, 'return a + b');
    assert.ok(!shown.some((text) => text.includes('<')));
    assert.equal(completeAt, 'return a + b<|role_end|>'.length - 1, 'complete as soon as the end marker is whole');
  });

  it('keeps only the rest of the line for a hole in the middle of a line', () => {
    const line: InfillHole = { prefix: 'total = ', suffix: ' + 1\n', multiline: false };
    assert.equal(streamed('qwen2', 'price * count\nmore = 2\n', line).final, 'price * count');
    assert.equal(streamed('gemma4', '\nprice * count\n', line).final, 'price * count', 'an instruction answer\'s leading blank line is no line of the fill');
  });

  it('takes an instruction answer out of its markdown fence, never showing the fence', () => {
    const { final, shown } = streamed('dream', '```python\nreturn a + b\n```\nExplanation: it adds.');
    assert.equal(final, 'return a + b');
    assert.ok(!shown.some((text) => text.includes('`')));
  });

  it('drops a repeat of the hole\'s line before the cursor', () => {
    const call: InfillHole = { prefix: 'x = compute(', suffix: ')\n', multiline: false };
    assert.equal(streamed('llada2', 'x = compute(items, 3', call).final, 'items, 3');
    assert.equal(streamed('llada2', '    return a + b').final, 'return a + b', 'the indentation the cursor already has');
    assert.equal(streamed('llada2', 'return a + b').final, 'return a + b');
    const fim = new AnswerCutter(promptTemplate('qwen2'), call);
    fim.push('x = compute(1');
    assert.equal(fim.finish(), 'x = compute(1', 'FIM models continue the text; nothing is taken off their answers');
  });

  it('ends where the model writes the code after the hole again', () => {
    const answer = 'return a + b\n\nprint(add(1, 2))\nprint("more")\n';
    const { final, completeAt } = streamed('dream', answer);
    assert.equal(final, 'return a + b\n');
    assert.ok(completeAt !== undefined && completeAt <= answer.indexOf('print("more")'), 'complete before the model goes on');
    const closer: InfillHole = { prefix: 'if x:\n    ', suffix: '\n}\nreturn y\n', multiline: true };
    assert.equal(streamed('qwen2', 'call()\n}\nmore()', closer).final, 'call()\n}\nmore()', 'a line of punctuation alone is no repeat');
  });
});
