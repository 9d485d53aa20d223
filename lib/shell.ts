/** `text` as one POSIX shell word: single-quoted, a `'` inside as `'\''`. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}
