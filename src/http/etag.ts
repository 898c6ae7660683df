// Weak entity tags over a record's revision counter: W/"r{revision}".
export function revisionEtag (revision: number): string {
  return `W/"r${revision}"`
}

/**
 * The revisions an If-Match header accepts: '*' for any, a list of numbers otherwise (empty when none of its tags
 * is one of ours, which can match nothing). Weak and strong forms compare alike, as for a weak comparison.
 */
export function parseIfMatch (header: string): '*' | number[] {
  if (header.trim() === '*') return '*'
  const revisions: number[] = []
  for (const tag of header.split(',').slice(0, 10)) {
    const match = /^\s*(?:W\/)?"r([1-9][0-9]{0,14})"\s*$/.exec(tag)
    if (match !== null) revisions.push(Number(match[1]))
  }
  return revisions
}
