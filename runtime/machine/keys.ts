/**
 * Characters to QEMU `sendkey` names, as nixpkgs' driver maps them (a US
 * keyboard): `A` is shift-a, `!` is shift-1, `\n` is ret.
 */
const SHIFTED: Record<string, string> = {
  "~": "grave_accent",
  "!": "1",
  "@": "2",
  "#": "3",
  $: "4",
  "%": "5",
  "^": "6",
  "&": "7",
  "*": "8",
  "(": "9",
  ")": "0",
  _: "minus",
  "+": "equal",
  "{": "bracket_left",
  "}": "bracket_right",
  "|": "backslash",
  ":": "semicolon",
  '"': "apostrophe",
  "<": "comma",
  ">": "dot",
  "?": "slash",
};

const PLAIN: Record<string, string> = {
  "`": "grave_accent",
  "-": "minus",
  "=": "equal",
  "[": "bracket_left",
  "]": "bracket_right",
  "\\": "backslash",
  ";": "semicolon",
  "'": "apostrophe",
  ",": "comma",
  ".": "dot",
  "/": "slash",
  " ": "spc",
  "\n": "ret",
  "\t": "tab",
};

/** The `sendkey` argument that types `char`; undefined if a US keyboard has no key for it. */
export function keyForChar(char: string): string | undefined {
  if (/^[a-z0-9]$/.test(char)) return char;
  if (/^[A-Z]$/.test(char)) return `shift-${char.toLowerCase()}`;
  if (char in PLAIN) return PLAIN[char];
  if (char in SHIFTED) return `shift-${SHIFTED[char]}`;
  return undefined;
}

/** Key names users write that QEMU spells differently (nixpkgs accepts both). */
const ALIASES: Record<string, string> = { enter: "ret", return: "ret", space: "spc", escape: "esc", del: "delete", pgup: "pgup", pgdn: "pgdn" };

/**
 * A chord as QEMU wants it: `ctrl-alt-delete`, `ctrl+c`, `alt-f2`, or a single
 * character (`A` → `shift-a`). Parts are joined with `-`.
 */
export function normaliseChord(chord: string): string {
  if ([...chord].length === 1) return keyForChar(chord) ?? chord;
  return chord
    .split(/[+-](?=.)/)
    .map((part) => {
      const lower = part.toLowerCase();
      return ALIASES[lower] ?? (part.length === 1 ? (keyForChar(part.toLowerCase()) ?? part) : lower);
    })
    .join("-");
}
