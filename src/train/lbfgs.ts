// Limited-memory BFGS (Nocedal & Wright, "Numerical Optimization", 2nd ed.,
// algorithm 7.4 and 7.5): a quasi-Newton minimiser for smooth functions that
// needs only values and gradients. The head's L2-regularised cross-entropy is
// strictly convex, so it reaches the one optimum from any start, with no
// learning rate and no epoch count; it stops on a gradient tolerance or an
// iteration cap instead. All arithmetic is float64 and deterministic.

/** Writes ∇f(x) into `grad` and returns f(x). */
export type ObjectiveFunction = (x: Float64Array, grad: Float64Array) => number | Promise<number>;

export interface LbfgsOptions {
  /** Stop when the largest gradient component is at most this. */
  tolerance: number;
  /** Stop after this many iterations (each is one line search). */
  maxIterations: number;
  /** Correction pairs kept (scipy's default is 10). */
  memory?: number;
  /**
   * Correction pairs to start from (a warm start's curvature, e.g. from the
   * solve of a nearby problem); updated in place with the pairs kept at the end.
   */
  pairs?: CorrectionPairs;
  signal?: AbortSignal;
}

/** The L-BFGS memory: steps s and gradient changes y, oldest first. */
export interface CorrectionPairs {
  s: Float64Array[];
  y: Float64Array[];
}

export type LbfgsStop = 'gradient tolerance' | 'iteration cap' | 'no further decrease';

export interface LbfgsResult {
  x: Float64Array;
  value: number;
  /** Largest absolute gradient component at x. */
  gradientNorm: number;
  iterations: number;
  /** Function evaluations, line-search trials included. */
  evaluations: number;
  converged: boolean;
  stop: LbfgsStop;
}

const ARMIJO = 1e-4;
const MAX_LINE_SEARCH = 30;

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const v = Math.abs(a[i]!);
    if (v > m) m = v;
  }
  return m;
}

export async function minimize(f: ObjectiveFunction, x0: Float64Array, options: LbfgsOptions): Promise<LbfgsResult> {
  const n = x0.length;
  const m = options.memory ?? 10;
  const x = Float64Array.from(x0);
  const g = new Float64Array(n);
  let evaluations = 1;
  let value = await f(x, g);
  if (!Number.isFinite(value)) throw new RangeError(`the objective is ${value} at the starting point`);
  const s: Float64Array[] = [];
  const y: Float64Array[] = [];
  const rho: number[] = [];
  for (let j = 0; j < (options.pairs?.s.length ?? 0); j++) {
    const sj = options.pairs!.s[j]!;
    const yj = options.pairs!.y[j]!;
    const sy = dot(sj, yj);
    if (sy > 1e-12 * dot(yj, yj)) {
      s.push(sj);
      y.push(yj);
      rho.push(1 / sy);
    }
  }
  while (s.length > m) {
    s.shift();
    y.shift();
    rho.shift();
  }
  const alpha = new Float64Array(m);
  const d = new Float64Array(n);
  const xNew = new Float64Array(n);
  const gNew = new Float64Array(n);
  let iterations = 0;
  let stop: LbfgsStop = 'iteration cap';
  let gradientNorm = maxAbs(g);
  if (gradientNorm <= options.tolerance) stop = 'gradient tolerance';
  else
    while (iterations < options.maxIterations) {
      options.signal?.throwIfAborted();
      // Two-loop recursion: d = −H·g with H the L-BFGS inverse-Hessian estimate.
      for (let i = 0; i < n; i++) d[i] = -g[i]!;
      for (let j = s.length - 1; j >= 0; j--) {
        const a = rho[j]! * dot(s[j]!, d);
        alpha[j] = a;
        const yj = y[j]!;
        for (let i = 0; i < n; i++) d[i] -= a * yj[i]!;
      }
      if (s.length) {
        const last = s.length - 1;
        const gamma = dot(s[last]!, y[last]!) / dot(y[last]!, y[last]!);
        for (let i = 0; i < n; i++) d[i] *= gamma;
      }
      for (let j = 0; j < s.length; j++) {
        const b = rho[j]! * dot(y[j]!, d);
        const sj = s[j]!;
        const a = alpha[j]!;
        for (let i = 0; i < n; i++) d[i] += (a - b) * sj[i]!;
      }
      let slope = dot(g, d);
      if (!(slope < 0)) {
        // Not a descent direction (curvature estimate gone stale): restart from steepest descent.
        s.length = y.length = rho.length = 0;
        for (let i = 0; i < n; i++) d[i] = -g[i]!;
        slope = dot(g, d);
      }
      // First step without curvature information: a unit-length move.
      let step = s.length ? 1 : Math.min(1, 1 / Math.sqrt(-slope));
      let accepted = false;
      let newValue = value;
      for (let trial = 0; trial < MAX_LINE_SEARCH; trial++) {
        for (let i = 0; i < n; i++) xNew[i] = x[i]! + step * d[i]!;
        evaluations++;
        newValue = await f(xNew, gNew);
        if (Number.isFinite(newValue) && newValue <= value + ARMIJO * step * slope) {
          accepted = true;
          break;
        }
        // Backtrack to the minimiser of the quadratic through f(0), f'(0) and f(step), kept within [0.1, 0.5]·step.
        const q = Number.isFinite(newValue) ? (-slope * step * step) / (2 * (newValue - value - slope * step)) : 0.1 * step;
        step = Math.min(0.5 * step, Math.max(0.1 * step, q));
      }
      iterations++;
      if (!accepted) {
        stop = 'no further decrease';
        break;
      }
      const sk = new Float64Array(n);
      const yk = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        sk[i] = xNew[i]! - x[i]!;
        yk[i] = gNew[i]! - g[i]!;
      }
      const sy = dot(sk, yk);
      // Keep only pairs with positive curvature, so the estimate stays positive definite.
      if (sy > 1e-12 * dot(yk, yk)) {
        if (s.length === m) {
          s.shift();
          y.shift();
          rho.shift();
        }
        s.push(sk);
        y.push(yk);
        rho.push(1 / sy);
      }
      const decrease = value - newValue;
      x.set(xNew);
      g.set(gNew);
      value = newValue;
      gradientNorm = maxAbs(g);
      if (gradientNorm <= options.tolerance) {
        stop = 'gradient tolerance';
        break;
      }
      // Float32 gradients (the ONNX engine) have a noise floor; stop when nothing moves any more.
      if (decrease <= 1e-15 * Math.max(1, Math.abs(value))) {
        stop = 'no further decrease';
        break;
      }
    }
  if (options.pairs) {
    options.pairs.s = s;
    options.pairs.y = y;
  }
  return { x, value, gradientNorm, iterations, evaluations, converged: stop === 'gradient tolerance', stop };
}
