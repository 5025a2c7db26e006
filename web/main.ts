import "uplot/dist/uPlot.min.css";
import "./page.css";
import { differentiateRequest, type Problem, post } from "./api.js";
import { el } from "./format.js";
import { drawGraph, linkHover } from "./graph.js";
import { drawHessian, hessianMatrix } from "./hessian.js";
import { setupMinimize } from "./minimize.js";
import { drawModel } from "./model.js";
import { drawResult } from "./result.js";
import { fromQuery, type Kind, type PageState, toQuery } from "./state.js";
import { type NonFinite, sampleRows, type Trace } from "./trace-rows.js";
import { drawTraceTable } from "./trace-table.js";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

function readForm(): PageState {
  return {
    kind: $<HTMLSelectElement>("kind").value as Kind,
    source: $<HTMLTextAreaElement>("source").value,
    at: $<HTMLInputElement>("at").value,
    mode: $<HTMLSelectElement>("mode").value,
    allowNonFinite: $<HTMLInputElement>("allow-non-finite").checked,
    seed: $<HTMLInputElement>("seed").value,
  };
}

function writeForm(s: PageState): void {
  $<HTMLSelectElement>("kind").value = s.kind;
  $<HTMLTextAreaElement>("source").value = s.source;
  $<HTMLInputElement>("at").value = s.at;
  $<HTMLSelectElement>("mode").value = s.mode;
  $<HTMLInputElement>("allow-non-finite").checked = s.allowNonFinite;
  $<HTMLInputElement>("seed").value = s.seed;
}

function show(id: string, visible: boolean): void {
  $(id).hidden = !visible;
}

function reset(): void {
  for (const id of ["error", "source-error", "result", "non-finite", "notice", "graph-view", "trace-view", "hessian-view", "model-view"])
    show(id, false);
}

/** A parse error at its place in the text: the message, the source with the column marked, and the cursor put there. */
function showProblem(problem: Problem, s: PageState): void {
  if (problem.position !== undefined && s.kind === "expr") {
    const at = Math.max(0, Math.min(s.source.length, problem.position - 1));
    const marked = el(
      "pre",
      { class: "caret" },
      s.source.slice(0, at),
      el("mark", {}, s.source.slice(at, at + 1) || " "),
      s.source.slice(at + 1),
    );
    const message = el("p", {}, `column ${problem.position}: ${problem.detail.split("\n")[0]}`);
    $("source-error").replaceChildren(message, marked);
    $("source-error").dataset.position = String(problem.position);
    show("source-error", true);
    const source = $<HTMLTextAreaElement>("source");
    source.focus();
    source.setSelectionRange(at, at + 1);
    return;
  }
  const where = [problem.field && `field ${problem.field}`, problem.node && `node ${problem.node}`].filter(Boolean).join(", ");
  $("error").replaceChildren(el("p", {}, problem.detail), ...(where ? [el("p", { class: "meta" }, where)] : []));
  show("error", true);
}

function drawTrace(trace: Trace, nonFinite: NonFinite | undefined): void {
  const { shown, hidden } = sampleRows(trace.rows);
  if (hidden > 0) {
    $("notice").textContent =
      `This function has ${trace.rows.length} nodes: drawing all of them would freeze the page, so the graph and the table show the ${shown.length} nearest the output (${hidden} left out; a dashed node has operands left out).`;
    show("notice", true);
  }
  drawGraph($("graph"), shown, trace, nonFinite?.node);
  drawTraceTable($("trace"), shown, trace, nonFinite?.node);
  show("graph-view", true);
  show("trace-view", true);
}

function drawAnswer(answer: Record<string, unknown>, s: PageState): void {
  drawResult($("result"), answer);
  show("result", true);
  const nonFinite = answer.nonFinite as NonFinite | undefined;
  if (nonFinite !== undefined) {
    $("non-finite").replaceChildren(
      el("p", {}, `${nonFinite.value} first arose at node ${nonFinite.node} (${nonFinite.op}), in the ${nonFinite.pass} pass.`),
      el("p", { class: "meta" }, nonFinite.message),
    );
    show("non-finite", true);
  }
  if (answer.trace !== undefined) drawTrace(answer.trace as Trace, nonFinite);
  if (answer.hessian !== undefined && answer.gradient !== undefined) {
    const { names, m } = hessianMatrix(
      answer.hessian as Record<string, Record<string, unknown>>,
      answer.gradient as Record<string, unknown>,
    );
    drawHessian($("hessian"), names, m);
    show("hessian-view", true);
  }
  if (s.kind === "model" && answer.gradient !== undefined) {
    drawModel($("model"), JSON.parse(s.source) as Record<string, unknown>, answer.gradient as Record<string, unknown>);
    show("model-view", true);
  }
}

async function evaluate(s: PageState): Promise<void> {
  document.body.dataset.state = "busy";
  reset();
  history.replaceState(null, "", toQuery(s));
  try {
    const outcome = await post("/v1/differentiate", differentiateRequest(s));
    if (outcome.ok) drawAnswer(outcome.body, s);
    else showProblem(outcome.problem, s);
  } catch (e) {
    showProblem({ detail: e instanceof Error ? e.message : String(e) }, s);
  } finally {
    document.body.dataset.state = "done";
  }
}

/** The seed only means something for a model. */
function showSeed(): void {
  $("seed").parentElement?.toggleAttribute("hidden", $<HTMLSelectElement>("kind").value !== "model");
}

function start(): void {
  linkHover($("graph"), $("trace"));
  $("kind").addEventListener("change", showSeed);
  $<HTMLFormElement>("input").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void evaluate(readForm());
  });
  setupMinimize(readForm);
  const fromUrl = fromQuery(location.search);
  if (fromUrl !== undefined) {
    writeForm(fromUrl);
    void evaluate(fromUrl);
  } else document.body.dataset.state = "ready";
  showSeed();
}

start();
