/**
 * `text` cut to at most `max` UTF-16 units (what Otter's length limits count), an ellipsis marking the cut;
 * never half a surrogate pair.
 */
export function clipText(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = /[\uD800-\uDBFF]/.test(text[max - 2] ?? '') ? max - 2 : max - 1;
  return `${text.slice(0, cut)}…`;
}
