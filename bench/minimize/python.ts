import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";

/**
 * The Python sides of M1 in one long-lived /usr/bin/python3 (Debian's scipy, the examples' `adjoint`
 * client): examples/python's gRPC client loop (scipy's L-BFGS-B, one Differentiate call per
 * evaluation, the function registered once) and scipy in-process with the analytic
 * scipy.optimize.rosen_der. One process, asked for one run at a time over stdin, so that the runs
 * interleave with the service's in rounds, and each is timed inside Python: interpreter start-up,
 * imports, channel set-up and registration are paid once, before any timing, for both.
 */
const PYTHON = "/usr/bin/python3";

const DRIVER = `
import json, sys, time
sys.dont_write_bytecode = True
import numpy as np
import _path
from adjoint import Client
from rosenbrock import definition, solve, start
from scipy.optimize import minimize, rosen, rosen_der
target, n = sys.argv[1], int(sys.argv[2])
client = Client(f"grpc://{target}")
objective = client.objective(client.register(definition(n)))
# The same settings as rosenbrock.solve, which the client loop uses.
options = {"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10}
runs = {
    "scipy": lambda: minimize(rosen, start(n), jac=rosen_der, method="L-BFGS-B", options=options),
    "loop": lambda: solve(objective.fun, n),
}
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    name = line.strip()
    t = time.perf_counter()
    r = runs[name]()
    ms = 1000 * (time.perf_counter() - t)
    print(json.dumps({"ms": ms, "evaluations": int(r.nfev), "error": float(np.max(np.abs(r.x - 1)))}), flush=True)
client.close()
`;

export interface PythonTiming {
  readonly ms: number;
  readonly evaluations: number;
  /** Largest |x_i − 1| at the end: how close the run came to the minimiser. */
  readonly error: number;
}

export type PythonContender = "scipy" | "loop";

/** The driver process; `run` is asynchronous, since the server under test runs in this process. */
export class PythonSide {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;
  private stderr = "";

  private constructor(examples: string, target: string, n: number) {
    this.child = spawn(PYTHON, ["-c", DRIVER, target, String(n)], {
      cwd: examples,
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
    });
    this.child.stderr.on("data", (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  static async start(examples: string, target: string, n: number): Promise<PythonSide> {
    const side = new PythonSide(examples, target, n);
    await side.next();
    return side;
  }

  async run(name: PythonContender): Promise<PythonTiming> {
    this.child.stdin.write(`${name}\n`);
    return (await this.next()) as PythonTiming;
  }

  close(): void {
    this.child.stdin.end();
  }

  private async next(): Promise<unknown> {
    const line = await this.lines.next();
    if (line.done) throw new Error(`python failed: ${this.stderr}`);
    return JSON.parse(line.value);
  }
}

export const examplesDir = (root: string) => join(root, "examples", "python");
