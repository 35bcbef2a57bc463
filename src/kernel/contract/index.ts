// The contract kit: the only part of the kernel a contract file may import.
export * from './define.js';
export * from './errors.js';
export * from './validation.js';
