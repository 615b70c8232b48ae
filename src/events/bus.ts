/**
 * Typed in-process event bus. Producers (the job runner) emit; consumers (SSE/WebSocket streams,
 * metrics, notifications, audit) subscribe. A throwing listener is isolated so one broken consumer
 * can never stop a job or starve the others.
 */
type Listener<T> = (payload: T) => void;

export interface EventBus<Events extends object> {
  on<K extends keyof Events>(type: K, listener: Listener<Events[K]>): () => void;
  /** Every event, for streams that forward all of them. */
  onAny(listener: <K extends keyof Events>(type: K, payload: Events[K]) => void): () => void;
  emit<K extends keyof Events>(type: K, payload: Events[K]): void;
}

export function createEventBus<Events extends object>(onListenerError: (error: unknown) => void): EventBus<Events> {
  const listeners = new Map<keyof Events, Set<Listener<never>>>();
  const anyListeners = new Set<<K extends keyof Events>(type: K, payload: Events[K]) => void>();

  const safely = (call: () => void): void => {
    try {
      call();
    } catch (error) {
      onListenerError(error);
    }
  };

  return {
    on(type, listener) {
      let set = listeners.get(type);
      if (!set) {
        set = new Set();
        listeners.set(type, set);
      }
      set.add(listener as Listener<never>);
      return () => set.delete(listener as Listener<never>);
    },
    onAny(listener) {
      anyListeners.add(listener);
      return () => anyListeners.delete(listener);
    },
    emit(type, payload) {
      for (const listener of listeners.get(type) ?? []) safely(() => (listener as Listener<typeof payload>)(payload));
      for (const listener of anyListeners) safely(() => listener(type, payload));
    },
  };
}
