/**
 * The engine's load-time self-check: one small forward pass through the loaded step graph, whose predictions
 * must be finite and must tell tokens apart. Weights overwritten with zeros give every token the same score
 * (a "fill" of token 0), and a NaN anywhere in the weights spreads to every row through attention; both load
 * without an error, so without this check they show up only as nonsense fills or failing requests.
 */
import { fullPassFeeds, type StepModel } from '../graph/stepContract';

/** Tokens of the check's canvas: a few ids spread over the vocabulary, so embeddings of different rows are read. */
const CHECK_TOKENS = 8;
/** Below this spread of one row's logits, the model scores every token the same. */
const MIN_LOGIT_SPREAD = 1e-4;
/** Entropy this close to ln(V) is a uniform distribution: the stats head's view of the same thing. */
const UNIFORM_ENTROPY_MARGIN = 1e-3;

/** What is wrong with the model's predictions, or undefined when they look like a model's. */
export async function weightProblem(model: StepModel, vocabSize: number): Promise<string | undefined> {
  const ids = Array.from({ length: CHECK_TOKENS }, (_, i) => Math.floor(((i + 1) * vocabSize) / (CHECK_TOKENS + 2)));
  const rows = ids.map((_, i) => i);
  const { predictions } = await model.run(fullPassFeeds(model, ids, rows), { newKv: 'none' });
  if (predictions.kind === 'logits') {
    const { logits, vocabSize: width } = predictions;
    for (let row = 0; row < predictions.rows; row++) {
      let min = Infinity;
      let max = -Infinity;
      for (let v = row * width; v < (row + 1) * width; v++) {
        const x = logits[v];
        if (!Number.isFinite(x)) return `a forward pass gave ${x} logits (row ${row}, token ${v - row * width})`;
        if (x < min) min = x;
        if (x > max) max = x;
      }
      if (max - min < MIN_LOGIT_SPREAD) return `a forward pass gave every token the same score (${max}) in row ${row}`;
    }
    return undefined;
  }
  const { topProbs, entropy } = predictions;
  const bad = [...topProbs, ...entropy].find((x) => !Number.isFinite(x));
  if (bad !== undefined) return `a forward pass gave ${bad} probabilities`;
  const uniform = Math.log(vocabSize) - UNIFORM_ENTROPY_MARGIN;
  if (entropy.every((h) => h >= uniform)) return 'a forward pass gave every token the same probability';
  return undefined;
}
