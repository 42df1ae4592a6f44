// Small statistics helpers for the benchmark driver. All inputs are arrays of numbers.

export function sorted(xs) {
  return Float64Array.from(xs).sort();
}

/** The q-quantile (0..1) with linear interpolation; NaN for an empty array. */
export function quantile(xs, q) {
  if (xs.length === 0) return NaN;
  const s = xs instanceof Float64Array && isSorted(xs) ? xs : sorted(xs);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

function isSorted(a) {
  for (let i = 1; i < a.length; i += 1) if (a[i - 1] > a[i]) return false;
  return true;
}

export const median = (xs) => quantile(xs, 0.5);
export const min = (xs) => (xs.length ? Math.min(...xs) : NaN);
export const max = (xs) => (xs.length ? Math.max(...xs) : NaN);

/** {median, min, max, p99, n} of a sample. */
export function summary(xs) {
  const s = sorted(xs);
  return { n: s.length, median: quantile(s, 0.5), min: s[0] ?? NaN, max: s[s.length - 1] ?? NaN, p99: quantile(s, 0.99) };
}

/** Element-wise a[i] - b[i] for paired samples. */
export function pairedDiff(a, b) {
  const n = Math.min(a.length, b.length);
  const out = new Array(n);
  for (let i = 0; i < n; i += 1) out[i] = a[i] - b[i];
  return out;
}

/** A bootstrap 95% interval of the median (deterministic seed), to show the noise. */
export function medianCi(xs, iterations = 1000) {
  if (xs.length < 5) return [NaN, NaN];
  let seed = 12345;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  const meds = new Float64Array(iterations);
  const sample = new Float64Array(xs.length);
  for (let it = 0; it < iterations; it += 1) {
    for (let i = 0; i < xs.length; i += 1) sample[i] = xs[Math.floor(rnd() * xs.length)];
    meds[it] = quantile(sorted(sample), 0.5);
  }
  meds.sort();
  return [meds[Math.floor(iterations * 0.025)], meds[Math.floor(iterations * 0.975)]];
}

/** Format a number with a fixed number of significant decimals. */
export function fmt(x, digits = 2) {
  if (x === undefined || x === null || Number.isNaN(x)) return 'n/a';
  if (!Number.isFinite(x)) return String(x);
  return x.toFixed(digits);
}
