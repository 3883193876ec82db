/**
 * Entry of the text worker thread (bundled as dist/engine/service/textWorkerMain.js): tokenizes and fits infill
 * text (engine/model/canvasTokens.ts) so that a huge prefix never blocks the protocol thread, where status
 * requests and cancels must be answered at once. Requests are handled in arrival order, so requests reach the
 * scheduler in the order the client sent them. Tokenizers are loaded on first use and kept until forgotten.
 */
import { parentPort } from 'node:worker_threads';
import { canvasTokenIds } from '../model/canvasTokens';
import { Tokenizer } from '../model/tokenizer';
import type { FromTextWorker, ToTextWorker } from './textWorkerMessages';

const port = parentPort;
if (!port) throw new Error('textWorkerMain.ts runs only as a worker thread.');
const tokenizers = new Map<string, Tokenizer>();

function tokenizer(file: string): Tokenizer {
  let loaded = tokenizers.get(file);
  if (!loaded) tokenizers.set(file, (loaded = Tokenizer.load(file)));
  return loaded;
}

port.on('message', (message: ToTextWorker) => {
  if (message.kind === 'forget') {
    tokenizers.delete(message.tokenizerFile);
    return;
  }
  let reply: FromTextWorker;
  try {
    const ids = canvasTokenIds(tokenizer(message.tokenizerFile), message.tokens, message.maxCanvasTokens, message.text);
    reply = { kind: 'canvas', id: message.id, prefixIds: Int32Array.from(ids.prefixIds), suffixIds: Int32Array.from(ids.suffixIds) };
  } catch (error) {
    reply = { kind: 'failed', id: message.id, message: (error as Error).message };
  }
  port.postMessage(reply, reply.kind === 'canvas' ? [reply.prefixIds.buffer as ArrayBuffer, reply.suffixIds.buffer as ArrayBuffer] : []);
});
