/** Order statistics for the benchmark's samples. */

/** The `q` quantile (0..1) of `values`, linear between ranks; NaN for no values. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

/** Median and interquartile range: the figure and its spread. */
export interface Summary {
  median: number;
  p25: number;
  p75: number;
  n: number;
}

export function summarize(values: readonly number[]): Summary {
  return { median: median(values), p25: quantile(values, 0.25), p75: quantile(values, 0.75), n: values.length };
}
