// Node has WebAssembly at run time; the project's lib setting (ES2023, no DOM) declares no types for it.
declare const WebAssembly: {
  Memory: new (descriptor: { initial: number; maximum: number; shared: true }) => { readonly buffer: SharedArrayBuffer };
};

const WASM_PAGE_BYTES = 64 * 1024;
/** Slot starts are aligned to this, more than any O_DIRECT alignment a device asks for. */
const SLOT_ALIGNMENT = 64 * 1024;

/**
 * One fixed region of the shared memory. Whoever uses it holds a reference; it goes back to the
 * pool when the last reference is released (the reader, the image write and every hash worker).
 */
export interface Slot {
  readonly index: number;
  /** Byte offset of the slot in the pool's SharedArrayBuffer. */
  readonly offset: number;
  /** The whole slot. */
  readonly view: Uint8Array;
  retain(): void;
  release(): void;
}

export interface SlotPool {
  /** The shared memory: page-aligned (WebAssembly memory), so slot views satisfy O_DIRECT. */
  readonly buffer: SharedArrayBuffer;
  readonly slotBytes: number;
  readonly count: number;
  /** Waits for a free slot and returns it holding one reference. */
  acquire(): Promise<Slot>;
  /** Resolves once every slot is back in the pool. */
  idle(): Promise<void>;
}

function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}

/** `count` slots of `slotBytes` each, carved out of one shared, page-aligned WebAssembly memory. */
export function createSlotPool(slotBytes: number, count: number): SlotPool {
  if (!Number.isSafeInteger(slotBytes) || slotBytes <= 0 || !Number.isSafeInteger(count) || count <= 0) {
    throw new RangeError(`invalid slot pool ${count} x ${slotBytes}`);
  }
  const stride = roundUp(slotBytes, SLOT_ALIGNMENT);
  const pages = roundUp(stride * count, WASM_PAGE_BYTES) / WASM_PAGE_BYTES;
  const buffer = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true }).buffer;
  const free: Slot[] = [];
  const references: number[] = new Array<number>(count).fill(0);
  const waiting: Array<(slot: Slot) => void> = [];
  let idleWaiters: Array<() => void> = [];

  function claim(slot: Slot): Slot {
    references[slot.index] = 1;
    return slot;
  }

  function giveBack(slot: Slot): void {
    const next = waiting.shift();
    if (next !== undefined) {
      next(claim(slot));
      return;
    }
    free.push(slot);
    if (free.length === count) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  for (let index = 0; index < count; index++) {
    const offset = index * stride;
    const slot: Slot = {
      index,
      offset,
      view: new Uint8Array(buffer, offset, slotBytes),
      retain() {
        const held = references[index] ?? 0;
        if (held <= 0) throw new Error(`slot ${index} retained while free`);
        references[index] = held + 1;
      },
      release() {
        const held = references[index] ?? 0;
        if (held <= 0) throw new Error(`slot ${index} released while free`);
        references[index] = held - 1;
        if (held === 1) giveBack(slot);
      },
    };
    free.push(slot);
  }

  return {
    buffer,
    slotBytes,
    count,
    acquire() {
      const slot = free.pop();
      if (slot !== undefined) return Promise.resolve(claim(slot));
      return new Promise((resolve) => waiting.push(resolve));
    },
    idle() {
      if (free.length === count) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}
