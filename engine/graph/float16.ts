/**
 * Half-precision values as the graphs and the runtime use them: Node 20 has no Float16Array, so fp16
 * tensors (weights, K/V caches, attention biases) travel as raw half bits in a Uint16Array, which is also
 * what onnxruntime-node expects for 'float16' tensors. The bit conversions live in convert/floatFormats.ts;
 * this module names them for graph and runtime code. Finite values beyond the half range saturate to ±65504.
 */
import { f16ToFloat32, float32ToF16, float32ToF16Bits } from './floatFormats';

export function toFloat16Bits(value: number): number {
  return float32ToF16Bits(value, true);
}

export function fromFloat16Bits(half: number): number {
  const sign = half & 0x8000 ? -1 : 1;
  const exponent = (half >>> 10) & 0x1f;
  const mantissa = half & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

export function toFloat16Array(values: Float32Array): Uint16Array {
  return float32ToF16(values, true);
}

export function fromFloat16Array(halves: Uint16Array): Float32Array {
  return f16ToFloat32(halves);
}
