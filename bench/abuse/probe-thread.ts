import { parentPort, workerData } from "node:worker_threads";
import { Prober } from "./probe.js";

/** The prober on a thread of its own, so that the attack's client work cannot delay the cheap requests. */
const prober = new Prober(workerData as { httpPort: number; grpcPort: number });
parentPort?.on("message", async (m: "read" | "stop") => {
  parentPort?.postMessage(m === "stop" ? await prober.stop() : prober.read());
});
