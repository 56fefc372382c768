// CPU time of processes, read from /proc (Linux): what a bench phase cost each party (the server processes, the
// database's, the bench's own clients), per operation, so a latency that queues on a shared machine can be told
// apart from work. Times are utime + stime in clock ticks (USER_HZ, 100 a second on Linux).
import { readdirSync, readFileSync } from "node:fs";

const TICK_MS = 10;

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces): index 0 is the state. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** CPU ms of one process so far (0 once it is gone); with `reaped`, also that of its children already waited for. */
export function processCpuMs(pid: number, reaped = false): number {
  const f = statFields(pid);
  if (!f) return 0;
  // utime, stime, cutime, cstime are fields 14-17 of stat, 11-14 here.
  const own = Number(f[11]) + Number(f[12]);
  return (own + (reaped ? Number(f[13]) + Number(f[14]) : 0)) * TICK_MS;
}

/** CPU ms of a process, its live children and the children it reaped (a PostgreSQL postmaster and its backends). */
export function processTreeCpuMs(pid: number): number {
  let total = processCpuMs(pid, true);
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (f && Number(f[1]) === pid) total += processCpuMs(Number(entry));
  }
  return total;
}

/** This process's CPU ms so far (user + system). */
export function ownCpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}
