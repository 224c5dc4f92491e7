// Dense-layer kernels for the TypeScript engine, all in float64 arithmetic.
//
// Speed notes (CPU time on the 2 shared cores of the build machine): V8 does
// not vectorise, so what counts is loads per multiply-add. Sweeping two input
// rows against four weight rows at once (eight running sums) loads each value
// once for several products: for a 1280→8 layer at batch 64 the forward pass
// went from 55 to 36 ms per 6,000 rows and the weight gradient from 64 to 48.
// The float32-input kernels (first layer, reading the cached features) are
// separate from the float64 ones (hidden activations) on purpose: one
// function fed both element kinds turns polymorphic in V8 and runs about 2×
// slower. The float64 ones stay simpler: they only run for MLP heads, which
// 'auto' sends to the ONNX engine unless they are tiny.

/**
 * out[i,o] = bias[o] + Σ_k x[offsets[i] + k]·W[o,k] for i < n, where x holds
 * float32 feature vectors (rows picked by offsets) and W is row-major [O, I].
 */
export function denseF32(
  x: Float32Array, offsets: Int32Array, n: number,
  W: Float64Array, bias: Float64Array, I: number, O: number, out: Float64Array,
): void {
  let i = 0;
  for (; i + 2 <= n; i += 2) {
    const xa = offsets[i]!, xb = offsets[i + 1]!;
    const oa = i * O, ob = oa + O;
    let o = 0;
    for (; o + 4 <= O; o += 4) {
      const w0 = o * I, w1 = w0 + I, w2 = w1 + I, w3 = w2 + I;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
      for (let k = 0; k < I; k++) {
        const u = x[xa + k]!, v = x[xb + k]!;
        const c0 = W[w0 + k]!, c1 = W[w1 + k]!, c2 = W[w2 + k]!, c3 = W[w3 + k]!;
        a0 += u * c0; a1 += u * c1; a2 += u * c2; a3 += u * c3;
        b0 += v * c0; b1 += v * c1; b2 += v * c2; b3 += v * c3;
      }
      out[oa + o] = bias[o]! + a0; out[oa + o + 1] = bias[o + 1]! + a1;
      out[oa + o + 2] = bias[o + 2]! + a2; out[oa + o + 3] = bias[o + 3]! + a3;
      out[ob + o] = bias[o]! + b0; out[ob + o + 1] = bias[o + 1]! + b1;
      out[ob + o + 2] = bias[o + 2]! + b2; out[ob + o + 3] = bias[o + 3]! + b3;
    }
    for (; o < O; o++) {
      const w0 = o * I;
      let a = 0, b = 0;
      for (let k = 0; k < I; k++) {
        const c = W[w0 + k]!;
        a += x[xa + k]! * c;
        b += x[xb + k]! * c;
      }
      out[oa + o] = bias[o]! + a;
      out[ob + o] = bias[o]! + b;
    }
  }
  if (i < n) {
    const xo = offsets[i]!;
    for (let o = 0; o < O; o++) {
      const w0 = o * I;
      // Two partial sums hide the latency of floating-point addition.
      let s0 = 0, s1 = 0;
      let k = 0;
      for (; k + 2 <= I; k += 2) {
        s0 += x[xo + k]! * W[w0 + k]!;
        s1 += x[xo + k + 1]! * W[w0 + k + 1]!;
      }
      if (k < I) s0 += x[xo + k]! * W[w0 + k]!;
      out[i * O + o] = bias[o]! + (s0 + s1);
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
  for (let i = 0; i < n; i++) for (let o = 0; o < O; o++) gb[o] += d[i * O + o]!;
  let i = 0;
  for (; i + 2 <= n; i += 2) {
    const xa = offsets[i]!, xb = offsets[i + 1]!;
    const da = i * O, db = da + O;
    let o = 0;
    for (; o + 4 <= O; o += 4) {
      const w0 = o * I, w1 = w0 + I, w2 = w1 + I, w3 = w2 + I;
      const p0 = d[da + o]!, p1 = d[da + o + 1]!, p2 = d[da + o + 2]!, p3 = d[da + o + 3]!;
      const q0 = d[db + o]!, q1 = d[db + o + 1]!, q2 = d[db + o + 2]!, q3 = d[db + o + 3]!;
      for (let k = 0; k < I; k++) {
        const u = x[xa + k]!, v = x[xb + k]!;
        gW[w0 + k] += p0 * u + q0 * v;
        gW[w1 + k] += p1 * u + q1 * v;
        gW[w2 + k] += p2 * u + q2 * v;
        gW[w3 + k] += p3 * u + q3 * v;
      }
    }
    for (; o < O; o++) {
      const w0 = o * I;
      const p = d[da + o]!, q = d[db + o]!;
      for (let k = 0; k < I; k++) gW[w0 + k] += p * x[xa + k]! + q * x[xb + k]!;
    }
  }
  if (i < n) {
    const xo = offsets[i]!;
    for (let o = 0; o < O; o++) {
      const g = d[i * O + o]!;
      const w0 = o * I;
      if (g !== 0) for (let k = 0; k < I; k++) gW[w0 + k] += g * x[xo + k]!;
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
 * gives the same results with half the multiply-adds. Four rows share each
 * load of the weight difference (1.5× faster than one row at a time).
 * `diff` is scratch of length I.
 */
export function binaryLogitsF32(
  x: Float32Array, offsets: Int32Array, n: number,
  W: Float64Array, bias: Float64Array, I: number, out: Float64Array, diff: Float64Array,
): void {
  for (let k = 0; k < I; k++) diff[k] = W[I + k]! - W[k]!;
  const b = bias[1]! - bias[0]!;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const xa = offsets[i]!, xb = offsets[i + 1]!, xc = offsets[i + 2]!, xd = offsets[i + 3]!;
    let sa = 0, sb = 0, sc = 0, sd = 0;
    for (let k = 0; k < I; k++) {
      const w = diff[k]!;
      sa += x[xa + k]! * w;
      sb += x[xb + k]! * w;
      sc += x[xc + k]! * w;
      sd += x[xd + k]! * w;
    }
    out[2 * i] = 0;
    out[2 * i + 1] = b + sa;
    out[2 * i + 2] = 0;
    out[2 * i + 3] = b + sb;
    out[2 * i + 4] = 0;
    out[2 * i + 5] = b + sc;
    out[2 * i + 6] = 0;
    out[2 * i + 7] = b + sd;
  }
  for (; i < n; i++) {
    const xo = offsets[i]!;
    let s0 = 0, s1 = 0;
    let k = 0;
    for (; k + 2 <= I; k += 2) {
      s0 += x[xo + k]! * diff[k]!;
      s1 += x[xo + k + 1]! * diff[k + 1]!;
    }
    if (k < I) s0 += x[xo + k]! * diff[k]!;
    out[2 * i] = 0;
    out[2 * i + 1] = b + (s0 + s1);
  }
}

/**
 * Weight gradients of a two-class linear layer: the logit gradients of a row
 * sum to zero (softmax and one-hot both sum to one), so gW[0,·] = −gW[1,·]
 * and one pass over the inputs suffices; four rows per sweep of gW.
 */
export function binaryWeightGradF32(
  x: Float32Array, offsets: Int32Array, n: number,
  d: Float64Array, I: number, gW: Float64Array, gb: Float64Array,
): void {
  gW.fill(0);
  let b0 = 0, b1 = 0;
  for (let i = 0; i < n; i++) {
    b0 += d[2 * i]!;
    b1 += d[2 * i + 1]!;
  }
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const xa = offsets[i]!, xb = offsets[i + 1]!, xc = offsets[i + 2]!, xd = offsets[i + 3]!;
    const ga = d[2 * i + 1]!, gb_ = d[2 * i + 3]!, gc = d[2 * i + 5]!, gd = d[2 * i + 7]!;
    for (let k = 0; k < I; k++) gW[I + k] += ga * x[xa + k]! + gb_ * x[xb + k]! + gc * x[xc + k]! + gd * x[xd + k]!;
  }
  for (; i < n; i++) {
    const xo = offsets[i]!;
    const g = d[2 * i + 1]!;
    if (g !== 0) for (let k = 0; k < I; k++) gW[I + k] += g * x[xo + k]!;
  }
  for (let k = 0; k < I; k++) gW[k] = -gW[I + k]!;
  gb[0] = b0;
  gb[1] = b1;
}
