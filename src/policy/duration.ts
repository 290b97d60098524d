// Durations as Kubernetes and Go write them: "90s", "1h30m", "500ms".

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PATTERN = /^(?:\d+(?:ms|s|m|h))+$/;

/** Milliseconds in `text`, or null when it is not a duration. */
export function parseDuration(text: string): number | null {
  if (!PATTERN.test(text)) return null;
  let total = 0;
  for (const m of text.matchAll(/(\d+)(ms|s|m|h)/g)) total += Number(m[1]) * (UNITS[m[2]!] ?? 0);
  return total;
}
