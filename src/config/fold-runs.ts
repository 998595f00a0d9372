/**
 * The folding both fast readers share (mapping-lines.ts, pin-lines.ts): every run of consecutive
 * entries (same indentation) in the text becomes ONE placeholder line naming it, `${token}${i}`,
 * so the YAML parser reads only the much shorter rest. `entryAt` reads the entry starting at a line
 * (one line or several) or says there is none.
 */
export interface FoldedRuns<E> {
  /** the text with each run of entry lines replaced by one placeholder line */
  text: string;
  /** the entries of each run, in order; run i's placeholder names `${token}${i}` */
  runs: E[][];
  /** the lines of each run as the text has them */
  runLines: string[][];
  token: string;
}

type EntryAt<E> = (lines: readonly string[], i: number) => { indent: string; entry: E; next: number } | undefined;

// Fewer entries than this are not worth a placeholder.
const MIN_RUN = 16;

export function foldRuns<E>(text: string, tokenBase: string, entryAt: EntryAt<E>, placeholder: (indent: string, name: string) => string): FoldedRuns<E> | undefined {
  // %YAML 1.1 changes how plain scalars are read (yes/no, 0b…, 1_000): no fast path under a directive.
  if (/^%/m.test(text)) return undefined;
  let token = tokenBase;
  while (text.includes(token)) token += 'x';
  const lines = text.split('\n');
  const out: string[] = [];
  const runs: E[][] = [];
  const runLines: string[][] = [];
  let i = 0;
  while (i < lines.length) {
    const first = entryAt(lines, i);
    if (!first) {
      out.push(lines[i++]!);
      continue;
    }
    const run = [first.entry];
    let j = first.next;
    for (let e = entryAt(lines, j); e && e.indent === first.indent; e = entryAt(lines, j)) {
      run.push(e.entry);
      j = e.next;
    }
    if (run.length < MIN_RUN) out.push(...lines.slice(i, j));
    else {
      out.push(placeholder(first.indent, `${token}${runs.length}`));
      runs.push(run);
      runLines.push(lines.slice(i, j));
    }
    i = j;
  }
  return runs.length ? { text: out.join('\n'), runs, runLines, token } : undefined;
}
