/** What the page evaluates; the URL query holds it, so a link reproduces a view. */
export type Kind = "expr" | "graph" | "model";

export interface PageState {
  readonly kind: Kind;
  readonly source: string;
  readonly at: string;
  readonly mode: string;
  readonly allowNonFinite: boolean;
  readonly seed: string;
}

const KINDS: readonly Kind[] = ["expr", "graph", "model"];

/** `?expr=…&at=x1=2,x2=0.5&mode=forward` (or `graph=` / `model=` with JSON); undefined when no function is named. */
export function fromQuery(search: string): PageState | undefined {
  const q = new URLSearchParams(search);
  const kind = KINDS.find((k) => q.has(k));
  if (kind === undefined) return undefined;
  return {
    kind,
    source: q.get(kind) ?? "",
    at: q.get("at") ?? "",
    mode: q.get("mode") ?? "reverse",
    allowNonFinite: q.get("nonfinite") === "1",
    seed: q.get("seed") ?? "1",
  };
}

export function toQuery(s: PageState): string {
  const q = new URLSearchParams();
  q.set(s.kind, s.source);
  if (s.at !== "") q.set("at", s.at);
  q.set("mode", s.mode);
  if (s.allowNonFinite) q.set("nonfinite", "1");
  if (s.kind === "model") q.set("seed", s.seed);
  return `?${q.toString()}`;
}
