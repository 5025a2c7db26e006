import uPlot from "uplot";
import { differentiateRequest, type Problem } from "./api.js";
import { el, num } from "./format.js";
import type { PageState } from "./state.js";

interface Progress {
  readonly iteration: number;
  readonly value: number | string;
  readonly gradientNorm: number | string;
}

/** Server-Sent Events from a fetch body (EventSource cannot POST): yields each event's name and data. */
async function* events(body: ReadableStream<Uint8Array>): AsyncGenerator<{ event: string; data: string }> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      yield { event, data: data.join("\n") };
      end = buffer.indexOf("\n\n");
    }
  }
}

/**
 * The value and the gradient norm per iteration, each on a log axis. A value that is not positive
 * cannot go on a log axis, so its axis is then asinh (log-like for large |v|, linear near zero).
 */
class Chart {
  private plot: uPlot | undefined;
  private readonly data: [number[], number[], number[]] = [[], [], []];

  constructor(private readonly target: HTMLElement) {}

  add(p: Progress): void {
    // The result's history repeats the records streamed so far: only later ones are new.
    if (this.data[0].length > 0 && p.iteration <= (this.data[0].at(-1) as number)) return;
    this.data[0].push(p.iteration);
    this.data[1].push(Number(p.value));
    this.data[2].push(Number(p.gradientNorm));
    if (this.plot === undefined) this.plot = this.create(Number(p.value) > 0 ? 3 : 4);
    else this.plot.setData(this.data);
  }

  private create(valueDistr: 3 | 4): uPlot {
    this.target.replaceChildren();
    const opts: uPlot.Options = {
      width: Math.min(820, Math.max(320, this.target.clientWidth || 640)),
      height: 260,
      scales: { x: { time: false }, v: { distr: valueDistr, log: 10 }, g: { distr: 3, log: 10 } },
      series: [
        { label: "iteration" },
        { label: "value", scale: "v", stroke: "#1565c0", width: 2, value: (_u, v) => (v == null ? "" : num(v)) },
        { label: "‖∇‖", scale: "g", stroke: "#c62828", width: 2, value: (_u, v) => (v == null ? "" : num(v)) },
      ],
      axes: [
        { label: "iteration" },
        { scale: "v", label: "value", stroke: "#1565c0" },
        { scale: "g", side: 1, label: "gradient norm", stroke: "#c62828" },
      ],
    };
    return new uPlot(opts, this.data, this.target);
  }
}

export function setupMinimize(readState: () => PageState): void {
  const form = document.getElementById("minimize-form") as HTMLFormElement;
  const stop = document.getElementById("minimize-stop") as HTMLButtonElement;
  const status = document.getElementById("min-status") as HTMLElement;
  const plot = document.getElementById("min-plot") as HTMLElement;
  let running: AbortController | undefined;
  stop.addEventListener("click", () => running?.abort());
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    running?.abort();
    const controller = new AbortController();
    running = controller;
    stop.disabled = false;
    run(readState(), controller.signal, new Chart(plot), status)
      .catch((e: unknown) => status.replaceChildren(el("p", { class: "error" }, controller.signal.aborted ? "stopped" : String(e))))
      .finally(() => {
        if (running === controller) stop.disabled = true;
      });
  });
}

async function run(state: PageState, signal: AbortSignal, chart: Chart, status: HTMLElement): Promise<void> {
  const d = differentiateRequest(state);
  const body: Record<string, unknown> = { function: d.function, start: d.point, progressEvery: 1 };
  body.method = (document.getElementById("min-method") as HTMLSelectElement).value;
  body.options = { maxIterations: Number((document.getElementById("min-iterations") as HTMLInputElement).value) || 200 };
  if (d.initialize !== undefined) body.initialize = d.initialize;
  status.replaceChildren(el("p", {}, "running…"));
  const response = await fetch("/v1/minimize", {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok || response.body === null) {
    const problem = (await response.json().catch(() => ({ detail: response.statusText }))) as Problem;
    status.replaceChildren(el("p", { class: "error" }, problem.detail));
    return;
  }
  for await (const { event, data } of events(response.body)) {
    const record = JSON.parse(data) as Record<string, unknown>;
    if (event === "progress") chart.add(record as unknown as Progress);
    else if (event === "error") status.replaceChildren(el("p", { class: "error" }, String(record.detail)));
    else if (event === "result") {
      // Progress events are thinned to 20 a second, so a fast run streams few: the history fills the rest in.
      for (const p of (record.history ?? []) as Progress[]) chart.add(p);
      status.replaceChildren(resultView(record));
    }
  }
}

function resultView(r: Record<string, unknown>): HTMLElement {
  const point = Object.entries((r.point ?? {}) as Record<string, unknown>).map(([k, v]) => `${k} = ${num(v)}`);
  return el(
    "dl",
    { class: "min-result" },
    el("dt", {}, "status"),
    el("dd", { class: "status" }, `${String(r.status)}: ${String(r.message ?? "")}`),
    el("dt", {}, "value"),
    el("dd", { class: "num" }, num(r.value)),
    el("dt", {}, "gradient norm"),
    el("dd", { class: "num" }, num(r.gradientNorm)),
    el("dt", {}, "iterations"),
    el("dd", {}, `${num(r.iterations)} (${num(r.evaluations)} evaluations)`),
    el("dt", {}, "point"),
    el("dd", { class: "num" }, point.join(", ")),
  );
}
