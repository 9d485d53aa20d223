/**
 * Process groups this driver started (QEMUs, vde_switches). Whatever path the
 * driver leaves by — even an uncaught exception or a second Ctrl-C — the exit
 * handler kills them all, synchronously, by group.
 */
const groups = new Set<number>();

export function track(pgid: number): () => void {
  if (pgid > 0) groups.add(pgid);
  return () => void groups.delete(pgid);
}

export function killGroup(pgid: number, signal: NodeJS.Signals = "SIGKILL"): void {
  if (pgid <= 0) return;
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already empty.
  }
}

export function killAllSync(): void {
  for (const pgid of groups) killGroup(pgid);
  groups.clear();
}
