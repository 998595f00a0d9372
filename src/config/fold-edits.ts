import { isDeepStrictEqual } from 'node:util';
import { parseDocument, type Document } from 'yaml';
import { foldMappingLines, unfoldMappingLines } from './mapping-lines.js';
import { foldPinLines, unfoldPinLines } from './pin-lines.js';
import { readConfigText } from './read-text.js';

/**
 * A Document edit that leaves the mapping's entries and the pins alone (add-shard's new shard,
 * remove-shard's dropped one, failover's promoted replica) made on the file with its runs of entry
 * lines folded away (mapping-lines.ts, pin-lines.ts): yaml parses and writes the short rest, and the
 * runs' lines are put back verbatim where their placeholders are. The file of 50,000 entries is
 * then edited in the time of its small part.
 *
 * Exact only if the edit did not need what was folded away, which is proven: the result is read
 * again and must mean the edited short document's data with the runs put back. An edit that looks
 * for a folded entry (an unpin of a folded tenant) fails on the short document, and one that adds
 * one again (a pin of a folded tenant) repeats its key: both end here with undefined, and the
 * caller edits the whole Document.
 */
export function editFolded(text: string, edit: (doc: Document) => void): { text: string; data: unknown } | undefined {
  const mapping = foldMappingLines(text);
  const pins = mapping ? undefined : foldPinLines(text);
  const folded = mapping ?? pins;
  if (!folded) return undefined;
  const unfold = (data: unknown) => (mapping ? unfoldMappingLines(data, mapping) : unfoldPinLines(data, pins!));
  const doc = parseDocument(folded.text, { uniqueKeys: false });
  if (doc.errors.length > 0) return undefined;
  try {
    edit(doc);
  } catch {
    return undefined; // it may have needed a folded entry: the whole Document says
  }
  const expected = unfold(doc.toJS());
  if (expected === undefined) return undefined;
  const placeholders = new Map(folded.runLines.map((_, i) => [mapping ? `- ${folded.token}${i}` : `${folded.token}${i}: run`, i]));
  let placed = 0;
  const lines = doc.toString({ flowCollectionPadding: true }).split('\n').map((line) => {
    const run = placeholders.get(line.trimStart());
    if (run === undefined) return line;
    placed++;
    // yaml writes every line end as \n: so does this, as the whole Document edit did
    return folded.runLines[run]!.map((l) => l.replace(/\r$/, '')).join('\n');
  });
  if (placed !== folded.runLines.length) return undefined;
  const after = lines.join('\n');
  const check = readConfigText(after, '');
  return 'data' in check && isDeepStrictEqual(check.data, expected) ? { text: after, data: check.data } : undefined;
}
