import { spawn } from "node:child_process";

/**
 * Runs `node <args>` with this process' terminal and passes SIGTERM and SIGHUP
 * on (the CLI's relaunch from the snapshot, and `run`'s driver). Ctrl-C at a
 * terminal reaches the child directly (same process group); forwarding it too
 * would count as a second Ctrl-C, which makes the driver give up on cleaning up.
 * Only node: modules are imported (the CLI loads this before anything else).
 */
export function runNode(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const child = spawn(process.execPath, args, { stdio: "inherit", env: { ...process.env, ...env } });
  const forward = (signal: NodeJS.Signals): void => {
    if (signal === "SIGINT" && process.stdin.isTTY) return;
    child.kill(signal);
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const s of signals) process.on(s, forward);
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      for (const s of signals) process.off(s, forward);
      resolve({ code, signal });
    });
  });
}
