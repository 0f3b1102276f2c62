/** Bounded concurrency: a fixed number of running slots and a bounded wait queue. */

/** `acquire()` resolves to a release function, or `undefined` when the queue is full. */
export function createLimiter(maxRunning: number, maxQueued: number) {
  let running = 0;
  const queue: Array<() => void> = [];
  const release = () => {
    const next = queue.shift();
    if (next) next();
    else running--;
  };
  return {
    acquire(): Promise<(() => void) | undefined> {
      if (running < maxRunning) {
        running++;
        return Promise.resolve(once(release));
      }
      if (queue.length >= maxQueued) return Promise.resolve(undefined);
      return new Promise((resolve) => queue.push(() => resolve(once(release))));
    },
    get running() {
      return running;
    },
    get queued() {
      return queue.length;
    },
  };
}

function once(fn: () => void): () => void {
  let called = false;
  return () => {
    if (!called) {
      called = true;
      fn();
    }
  };
}
