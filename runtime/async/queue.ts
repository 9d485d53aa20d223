/**
 * Runs tasks one after the other. A machine has one backdoor shell, and the
 * protocol is strictly sequential, so every command to one machine goes
 * through one of these; different machines have their own and run in parallel.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task, task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
