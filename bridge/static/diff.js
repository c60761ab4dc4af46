// A line diff for the "changed on disk" banner: what differs between the file on disk and
// the editor's text, with two lines of context around each change.
//
// Common head and tail lines are set aside first; the middle is compared with a longest
// common subsequence table (bounded: past 4 million cells it shows the middle as replaced).

const CONTEXT = 2;
const MAX_CELLS = 4e6;

// -> [[op, line]], op: "=" same, "-" only on disk (a), "+" only in the editor (b),
// "~" some unchanged lines left out (line: how many).
export function lineDiff(a, b) {
  const A = a.split("\n"), B = b.split("\n");
  let head = 0;
  while (head < A.length && head < B.length && A[head] === B[head]) head++;
  let tail = 0;
  while (tail < A.length - head && tail < B.length - head &&
         A[A.length - 1 - tail] === B[B.length - 1 - tail]) tail++;
  const a1 = A.slice(head, A.length - tail), b1 = B.slice(head, B.length - tail);
  const ops = [];
  for (let i = 0; i < head; i++) ops.push(["=", A[i]]);
  ops.push(...middle(a1, b1));
  for (let i = A.length - tail; i < A.length; i++) ops.push(["=", A[i]]);
  return collapse(ops);
}

function middle(a, b) {
  const n = a.length, m = b.length;
  if (!n || !m || n * m > MAX_CELLS) {
    return [...a.map((l) => ["-", l]), ...b.map((l) => ["+", l])];
  }
  // lcs[i][j]: the longest common subsequence of a[i:] and b[j:].
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) { out.push(["=", a[i]]); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(["-", a[i++]]);
    else out.push(["+", b[j++]]);
  }
  while (i < n) out.push(["-", a[i++]]);
  while (j < m) out.push(["+", b[j++]]);
  return out;
}

// Keep CONTEXT unchanged lines around each change; say how many others were left out.
function collapse(ops) {
  const keep = ops.map(() => false);
  ops.forEach(([op], i) => {
    if (op === "=") return;
    for (let k = Math.max(0, i - CONTEXT); k <= Math.min(ops.length - 1, i + CONTEXT); k++) {
      keep[k] = true;
    }
  });
  if (!keep.some(Boolean)) return [["~", "no differences"]];
  const out = [];
  let skipped = 0;
  ops.forEach((op, i) => {
    if (keep[i]) {
      if (skipped) out.push(["~", `${skipped} unchanged line${skipped === 1 ? "" : "s"}`]);
      skipped = 0;
      out.push(op);
    } else skipped++;
  });
  if (skipped) out.push(["~", `${skipped} unchanged line${skipped === 1 ? "" : "s"}`]);
  return out;
}
