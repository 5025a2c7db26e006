import { getPriority, setPriority } from "node:os";

/**
 * Lowers the calling thread's scheduling priority by `steps` nice levels (to 19 at most). On Linux a
 * nice value belongs to a thread (setpriority with pid 0 names the calling thread), so a pool worker
 * gives way to the event loops of its own process and its siblings whenever both want a core: on two
 * cores, beside two workers computing training steps, W1's p99 fell from 9.7–15.2 to 7.4–13.1 ms
 * with the workers at nice 10 (docs/service.md). Elsewhere the call would lower the whole process, so
 * it is not made. A nice value ranks a thread only within its scheduling group (a container's cgroup,
 * a terminal session's autogroup), so the default (ADJOINT_WORKER_NICE, 10) does not hand the pool's
 * cores to unrelated programs in other groups. The thread's nice value after, or undefined where
 * nothing changed.
 */
export function lowerThreadPriority(steps: number): number | undefined {
  if (process.platform !== "linux" || !(steps > 0)) return undefined;
  try {
    const nice = Math.min(19, getPriority() + steps);
    setPriority(nice);
    return nice;
  } catch {
    // A sandbox that forbids it: the worker runs at its process's priority, as before.
    return undefined;
  }
}
