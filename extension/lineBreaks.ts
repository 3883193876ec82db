/**
 * A document turns `\r\n` and a lone `\r` in inserted text into its own line break, so texts are compared and
 * measured with `\n` as their only line break.
 */
export function normalizeLineBreaks(text: string): string {
  return text.replace(/\r\n?/g, '\n');
}
