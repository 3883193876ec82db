/**
 * Reads a JSON file of a model or checkpoint folder; a read or parse error names the file, since JSON.parse's
 * own message ("Expected ',' or '}' after property value in JSON at position 200") does not say which file
 * of a folder is broken.
 */
import { readFileSync } from 'node:fs';

/** The parsed content of `file`; `what` names its role in errors (e.g. 'tokenizer', 'depth profile'). */
export function readJsonFile(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`Cannot read the ${what} file ${file}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`The ${what} file ${file} is not valid JSON: ${(error as Error).message}`);
  }
}
