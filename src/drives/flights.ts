/**
 * I/O on drives and image sources that may never return. A read of a drive that stopped answering
 * (or of a file on a FUSE or NFS mount that hangs) blocks a libuv threadpool thread inside the
 * kernel until the device answers, and no timeout takes that thread back. The threadpool has four
 * threads by default and every file operation of the service needs one, so such work is bounded
 * twice: one operation at a time per key (a second caller joins the one in flight instead of
 * blocking another thread), and at most `size` operations over all keys (`createSlots`), so stuck
 * drives hold at most that many threads. Every caller waits at most its own timeout; the work
 * itself goes on and frees its slot whenever the kernel lets go.
 */

/** Where the work of a flight is when its caller stops waiting. */
export type FlightStage = 'waiting' | 'running';

export interface Slots {
  /** Runs `work` as soon as fewer than `size` works run, in the order they came. */
  run<T>(work: () => Promise<T>): Promise<T>;
}

export function createSlots(size: number): Slots {
  let free = size;
  const waiting: Array<() => void> = [];
  const release = (): void => {
    const next = waiting.shift();
    if (next) next();
    else free += 1;
  };
  return {
    async run(work) {
      if (free > 0) free -= 1;
      else await new Promise<void>((resolve) => waiting.push(resolve));
      try {
        return await work();
      } finally {
        release();
      }
    },
  };
}

export interface Flights<T> {
  /**
   * The result of `work` for `key`, or of the work already in flight for that key. Rejects with
   * `timeout(stage)` when no result came within `timeoutMs` of this call.
   */
  run(key: string, work: () => Promise<T>, timeoutMs: number, timeout: (stage: FlightStage) => Error): Promise<T>;
  /** The work in flight for `key`, however long it takes, or null: for a caller that stopped waiting and still wants the result. */
  pending(key: string): Promise<T> | null;
  /** Keys whose work holds a slot now. */
  running(): string[];
}

interface Flight<T> {
  done: Promise<T>;
  stage: { current: FlightStage };
}

export function createFlights<T>(slots: Slots): Flights<T> {
  const flights = new Map<string, Flight<T>>();

  const start = (key: string, work: () => Promise<T>): Flight<T> => {
    const stage: Flight<T>['stage'] = { current: 'waiting' };
    const done = slots
      .run(() => {
        stage.current = 'running';
        return work();
      })
      .finally(() => {
        if (flights.get(key)?.done === done) flights.delete(key);
      });
    const flight = { done, stage };
    flights.set(key, flight);
    return flight;
  };

  return {
    run(key, work, timeoutMs, timeout) {
      const flight = flights.get(key) ?? start(key, work);
      return withDeadline(flight.done, timeoutMs, () => timeout(flight.stage.current));
    },
    pending(key) {
      return flights.get(key)?.done ?? null;
    },
    running() {
      return [...flights].filter(([, flight]) => flight.stage.current === 'running').map(([key]) => key);
    },
  };
}

function withDeadline<T>(work: Promise<T>, timeoutMs: number, timeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(timeout()), timeoutMs);
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
