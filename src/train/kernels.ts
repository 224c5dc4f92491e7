// Dense-layer kernels for the TypeScript engine, all in float64 arithmetic.
//
// Speed notes (measured on the 2 shared cores of the build machine, 64M
// multiply-adds per pass): handling 2–4 outputs per sweep over an input row
// loads each input value once for several outputs and roughly halves the time
// of a naive loop (backward: 125 → 55–63 ms; forward: 68 → 50 ms). The
// float32-row and float64-row versions are separate copies on purpose: one
// function fed both element kinds becomes polymorphic in V8 and runs about
// 2× slower.

/**
 * out[i,o] = bias[o] + Σ_k x[offsets[i] + k]·W[o,k] for i < n, where x holds
 * float32 feature vectors (rows picked by offsets) and W is row-major [O, I].
 */
export function denseF32(
  x: Float32Array, offsets: Int32Array, n: number,
  W: Float64Array, bias: Float64Array, I: number, O: number, out: Float64Array,
): void {
  for (let i = 0; i < n; i++) {
    const xo = offsets[i]!;
    const oo = i * O;
    let o = 0;
    for (; o + 4 <= O; o += 4) {
      const a = o * I, b = a + I, c = b + I, d = c + I;
      let sa = 0, sb = 0, sc = 0, sd = 0;
      for (let k = 0; k < I; k++) {
        const v = x[xo + k]!;
        sa += v * W[a + k]!;
        sb += v * W[b + k]!;
        sc += v * W[c + k]!;
        sd += v * W[d + k]!;
      }
      out[oo + o] = bias[o]! + sa;
      out[oo + o + 1] = bias[o + 1]! + sb;
      out[oo + o + 2] = bias[o + 2]! + sc;
      out[oo + o + 3] = bias[o + 3]! + sd;
    }
    if (o + 2 <= O) {
      // Two partial sums per output hide the latency of floating-point addition.
      const a = o * I, b = a + I;
      let a0 = 0, a1 = 0, b0 = 0, b1 = 0;
      let k = 0;
      for (; k + 2 <= I; k += 2) {
        const v0 = x[xo + k]!, v1 = x[xo + k + 1]!;
        a0 += v0 * W[a + k]!;
        a1 += v1 * W[a + k + 1]!;
        b0 += v0 * W[b + k]!;
        b1 += v1 * W[b + k + 1]!;
      }
      if (k < I) {
        const v = x[xo + k]!;
        a0 += v * W[a + k]!;
        b0 += v * W[b + k]!;
      }
      out[oo + o] = bias[o]! + (a0 + a1);
      out[oo + o + 1] = bias[o + 1]! + (b0 + b1);
      o += 2;
    }
    if (o < O) {
      const a = o * I;
      let s0 = 0, s1 = 0;
      let k = 0;
      for (; k + 2 <= I; k += 2) {
        s0 += x[xo + k]! * W[a + k]!;
        s1 += x[xo + k + 1]! * W[a + k + 1]!;
      }
      if (k < I) s0 += x[xo + k]! * W[a + k]!;
      out[oo + o] = bias[o]! + (s0 + s1);
    }
  }
}

/** denseF32 for float64 input rows (hidden activations). */
export function denseF64(
  x: Float64Array, offsets: Int32Array, n: number,
  W: Float64Array, bias: Float64Array, I: number, O: number, out: Float64Array,
): void {
  for (let i = 0; i < n; i++) {
    const xo = offsets[i]!;
    const oo = i * O;
    let o = 0;
    for (; o + 4 <= O; o += 4) {
      const a = o * I, b = a + I, c = b + I, d = c + I;
      let sa = 0, sb = 0, sc = 0, sd = 0;
      for (let k = 0; k < I; k++) {
        const v = x[xo + k]!;
        sa += v * W[a + k]!;
        sb += v * W[b + k]!;
        sc += v * W[c + k]!;
        sd += v * W[d + k]!;
      }
      out[oo + o] = bias[o]! + sa;
      out[oo + o + 1] = bias[o + 1]! + sb;
      out[oo + o + 2] = bias[o + 2]! + sc;
      out[oo + o + 3] = bias[o + 3]! + sd;
    }
    if (o + 2 <= O) {
      const a = o * I, b = a + I;
      let a0 = 0, a1 = 0, b0 = 0, b1 = 0;
      let k = 0;
      for (; k + 2 <= I; k += 2) {
        const v0 = x[xo + k]!, v1 = x[xo + k + 1]!;
        a0 += v0 * W[a + k]!;
        a1 += v1 * W[a + k + 1]!;
        b0 += v0 * W[b + k]!;
        b1 += v1 * W[b + k + 1]!;
      }
      if (k < I) {
        const v = x[xo + k]!;
        a0 += v * W[a + k]!;
        b0 += v * W[b + k]!;
      }
      out[oo + o] = bias[o]! + (a0 + a1);
      out[oo + o + 1] = bias[o + 1]! + (b0 + b1);
      o += 2;
    }
    if (o < O) {
      const a = o * I;
      let s0 = 0, s1 = 0;
      let k = 0;
      for (; k + 2 <= I; k += 2) {
        s0 += x[xo + k]! * W[a + k]!;
        s1 += x[xo + k + 1]! * W[a + k + 1]!;
      }
      if (k < I) s0 += x[xo + k]! * W[a + k]!;
      out[oo + o] = bias[o]! + (s0 + s1);
    }
  }
}

/**
 * Weight and bias gradients of a dense layer: gW[o,k] = Σ_i d[i,o]·x[offsets[i] + k],
 * gb[o] = Σ_i d[i,o], for float32 input rows. Overwrites gW and gb.
 */
export function weightGradF32(
  x: Float32Array, offsets: Int32Array, n: number,
  d: Float64Array, I: number, O: number, gW: Float64Array, gb: Float64Array,
): void {
  gW.fill(0);
  gb.fill(0);
  for (let i = 0; i < n; i++) {
    const xo = offsets[i]!;
    const dd = i * O;
    for (let o = 0; o < O; o++) gb[o] += d[dd + o]!;
    let o = 0;
    for (; o + 4 <= O; o += 4) {
      const ga = d[dd + o]!, gb_ = d[dd + o + 1]!, gc = d[dd + o + 2]!, gd = d[dd + o + 3]!;
      const a = o * I, b = a + I, c = b + I, e = c + I;
      for (let k = 0; k < I; k++) {
        const v = x[xo + k]!;
        gW[a + k] += ga * v;
        gW[b + k] += gb_ * v;
        gW[c + k] += gc * v;
        gW[e + k] += gd * v;
      }
    }
    if (o + 2 <= O) {
      const ga = d[dd + o]!, gb_ = d[dd + o + 1]!;
      const a = o * I, b = a + I;
      for (let k = 0; k < I; k++) {
        const v = x[xo + k]!;
        gW[a + k] += ga * v;
        gW[b + k] += gb_ * v;
      }
      o += 2;
    }
    if (o < O) {
      const g = d[dd + o]!;
      const a = o * I;
      if (g !== 0) for (let k = 0; k < I; k++) gW[a + k] += g * x[xo + k]!;
    }
  }
}

/** weightGradF32 for float64 input rows (hidden activations). */
export function weightGradF64(
  x: Float64Array, offsets: Int32Array, n: number,
  d: Float64Array, I: number, O: number, gW: Float64Array, gb: Float64Array,
): void {
  gW.fill(0);
  gb.fill(0);
  for (let i = 0; i < n; i++) {
    const xo = offsets[i]!;
    const dd = i * O;
    for (let o = 0; o < O; o++) gb[o] += d[dd + o]!;
    let o = 0;
    for (; o + 4 <= O; o += 4) {
      const ga = d[dd + o]!, gb_ = d[dd + o + 1]!, gc = d[dd + o + 2]!, gd = d[dd + o + 3]!;
      const a = o * I, b = a + I, c = b + I, e = c + I;
      for (let k = 0; k < I; k++) {
        const v = x[xo + k]!;
        gW[a + k] += ga * v;
        gW[b + k] += gb_ * v;
        gW[c + k] += gc * v;
        gW[e + k] += gd * v;
      }
    }
    if (o + 2 <= O) {
      const ga = d[dd + o]!, gb_ = d[dd + o + 1]!;
      const a = o * I, b = a + I;
      for (let k = 0; k < I; k++) {
        const v = x[xo + k]!;
        gW[a + k] += ga * v;
        gW[b + k] += gb_ * v;
      }
      o += 2;
    }
    if (o < O) {
      const g = d[dd + o]!;
      const a = o * I;
      if (g !== 0) for (let k = 0; k < I; k++) gW[a + k] += g * x[xo + k]!;
    }
  }
}

/** Gradient with respect to a dense layer's input: dx[i,k] = Σ_o d[i,o]·W[o,k] (dense rows of width I). */
export function inputGrad(d: Float64Array, n: number, W: Float64Array, I: number, O: number, dx: Float64Array): void {
  dx.fill(0, 0, n * I);
  for (let i = 0; i < n; i++) {
    const xo = i * I;
    const dd = i * O;
    let o = 0;
    for (; o + 4 <= O; o += 4) {
      const ga = d[dd + o]!, gb = d[dd + o + 1]!, gc = d[dd + o + 2]!, gd = d[dd + o + 3]!;
      const a = o * I, b = a + I, c = b + I, e = c + I;
      for (let k = 0; k < I; k++) dx[xo + k] += ga * W[a + k]! + gb * W[b + k]! + gc * W[c + k]! + gd * W[e + k]!;
    }
    for (; o < O; o++) {
      const g = d[dd + o]!;
      const a = o * I;
      if (g !== 0) for (let k = 0; k < I; k++) dx[xo + k] += g * W[a + k]!;
    }
  }
}

/**
 * Two-class linear layer, logits up to a per-row shift: out[i,0] = 0 and
 * out[i,1] = Σ_k x[offsets[i] + k]·(W[1,k] − W[0,k]) + (bias[1] − bias[0]).
 * Softmax, cross-entropy and argmax only see logit differences, so this
 * gives the same results with half the multiply-adds. `diff` is scratch of length I.
 */
export function binaryLogitsF32(
  x: Float32Array, offsets: Int32Array, n: number,
  W: Float64Array, bias: Float64Array, I: number, out: Float64Array, diff: Float64Array,
): void {
  for (let k = 0; k < I; k++) diff[k] = W[I + k]! - W[k]!;
  const b = bias[1]! - bias[0]!;
  for (let i = 0; i < n; i++) {
    const xo = offsets[i]!;
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    let k = 0;
    for (; k + 4 <= I; k += 4) {
      s0 += x[xo + k]! * diff[k]!;
      s1 += x[xo + k + 1]! * diff[k + 1]!;
      s2 += x[xo + k + 2]! * diff[k + 2]!;
      s3 += x[xo + k + 3]! * diff[k + 3]!;
    }
    for (; k < I; k++) s0 += x[xo + k]! * diff[k]!;
    out[2 * i] = 0;
    out[2 * i + 1] = b + (s0 + s1 + (s2 + s3));
  }
}

/**
 * Weight gradients of a two-class linear layer: the logit gradients of a row
 * sum to zero (softmax and one-hot both sum to one), so gW[0,·] = −gW[1,·]
 * and one pass over the inputs suffices.
 */
export function binaryWeightGradF32(
  x: Float32Array, offsets: Int32Array, n: number,
  d: Float64Array, I: number, gW: Float64Array, gb: Float64Array,
): void {
  gW.fill(0);
  let b0 = 0, b1 = 0;
  for (let i = 0; i < n; i++) {
    const xo = offsets[i]!;
    const g = d[2 * i + 1]!;
    b0 += d[2 * i]!;
    b1 += g;
    if (g === 0) continue;
    let k = 0;
    for (; k + 4 <= I; k += 4) {
      gW[I + k] += g * x[xo + k]!;
      gW[I + k + 1] += g * x[xo + k + 1]!;
      gW[I + k + 2] += g * x[xo + k + 2]!;
      gW[I + k + 3] += g * x[xo + k + 3]!;
    }
    for (; k < I; k++) gW[I + k] += g * x[xo + k]!;
  }
  for (let k = 0; k < I; k++) gW[k] = -gW[I + k]!;
  gb[0] = b0;
  gb[1] = b1;
}
