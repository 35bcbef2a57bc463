// Tensors cross the port as JSON `{type, dims, data}` and reach onnxruntime as typed arrays. int64
// values travel as JSON numbers (exact up to 2^53, which covers token ids and shapes).
import { ContractError } from '../../kernel/contract/errors.js';
import type { TensorJson } from './contract.js';
import type { WireData, WireTensor } from './worker-pool.js';

const numeric = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
} as const;

function wrongType(field: string, type: string): never {
  throw new ContractError('invalid_input', `${field}: a ${type} tensor needs ${type === 'string' ? 'strings' : type === 'bool' ? 'booleans' : 'numbers'}`, [
    { path: `${field}.data`, message: `values of type ${type}` },
  ]);
}

export function toWire(t: TensorJson, field: string): WireTensor {
  const { type, dims, data } = t;
  if (type === 'string') {
    if (!data.every((v) => typeof v === 'string')) wrongType(field, type);
    return { type, dims, data: data as string[] };
  }
  if (type === 'bool') {
    if (!data.every((v) => typeof v === 'boolean')) wrongType(field, type);
    return { type, dims, data: Uint8Array.from(data as boolean[], (b) => (b ? 1 : 0)) };
  }
  if (!data.every((v) => typeof v === 'number')) wrongType(field, type);
  const nums = data as number[];
  if (type === 'int64' || type === 'uint64') {
    if (!nums.every((n) => Number.isSafeInteger(n) && (type === 'int64' || n >= 0))) {
      throw new ContractError('invalid_input', `${field}: ${type} values must be safe integers`, [{ path: `${field}.data`, message: 'integers' }]);
    }
    const arr: WireData = type === 'int64' ? BigInt64Array.from(nums, (n) => BigInt(n)) : BigUint64Array.from(nums, (n) => BigInt(n));
    return { type, dims, data: arr };
  }
  return { type, dims, data: numeric[type].from(nums) };
}

export function fromWire(t: WireTensor): TensorJson {
  const type = t.type as TensorJson['type'];
  const d = t.data;
  let data: TensorJson['data'];
  if (Array.isArray(d)) data = d as string[] | boolean[];
  else if (d instanceof BigInt64Array || d instanceof BigUint64Array) data = Array.from(d, (v) => Number(v));
  else if (type === 'bool') data = Array.from(d as Uint8Array, (v) => v !== 0);
  else data = Array.from(d as Float32Array);
  return { type, dims: t.dims, data };
}
