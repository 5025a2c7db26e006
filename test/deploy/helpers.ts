import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { SETTINGS, type ServiceConfig } from "../../src/service/config.js";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** A setting's default, read from the service's own table (src/service/config.ts), not written down again. */
export function settingDefault(key: keyof ServiceConfig): number | string {
  const s = SETTINGS.find((x) => x.key === key);
  if (!s) throw new Error(`no setting ${key}`);
  return s.fallback({});
}

/** The environment variable of a setting, e.g. ADJOINT_DRAIN_MS for drainMs. */
export function settingEnv(key: keyof ServiceConfig): string {
  const s = SETTINGS.find((x) => x.key === key);
  if (!s) throw new Error(`no setting ${key}`);
  return s.env;
}

export const SETTING_ENVS = new Set(SETTINGS.map((s) => s.env));

/** Every YAML document of a file, parsed (errors thrown; `<<` merge keys applied, as compose does). */
export function yamlDocuments(path: string): Record<string, unknown>[] {
  const docs = parseAllDocuments(readFileSync(join(ROOT, path), "utf8"), { merge: true });
  return (Array.isArray(docs) ? docs : [docs]).map((d) => {
    if (d.errors.length) throw new Error(`${path}: ${d.errors.map((e) => e.message).join("; ")}`);
    return d.toJS() as Record<string, unknown>;
  });
}

// ---- Dockerfile ---------------------------------------------------------------------------------

export interface Instruction {
  readonly op: string;
  readonly args: string;
}

export interface Stage {
  readonly base: string;
  readonly name?: string;
  readonly instructions: Instruction[];
}

/** The stages of a Dockerfile: continuation lines joined, comments dropped, FROM starting each stage. */
export function parseDockerfile(text: string): Stage[] {
  const lines: string[] = [];
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("#") || (line === "" && current === "")) continue;
    if (line.endsWith("\\")) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    lines.push((current + line).trim());
    current = "";
  }
  const stages: Stage[] = [];
  for (const line of lines) {
    if (line === "") continue;
    const [word, ...rest] = line.split(/\s+/);
    const op = word.toUpperCase();
    const args = line.slice(word.length).trim();
    if (op === "FROM") {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!m) throw new Error(`FROM ${args}`);
      stages.push({ base: m[1], name: m[2], instructions: [] });
    } else if (op === "ARG" && stages.length === 0) {
      // a global ARG: nothing to run
    } else {
      if (stages.length === 0) throw new Error(`${op} before FROM`);
      stages[stages.length - 1].instructions.push({ op, args: rest.length ? args : "" });
    }
  }
  return stages;
}

/** A JSON exec form (`["a", "b"]`), or undefined for the shell form. */
export function execForm(args: string): string[] | undefined {
  if (!args.startsWith("[")) return undefined;
  return JSON.parse(args) as string[];
}

/** `ENV A=1 B="two words"` (and the legacy `ENV A 1`). */
export function envPairs(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!args.includes("=")) {
    const [k, ...v] = args.split(/\s+/);
    out[k] = v.join(" ");
    return out;
  }
  for (const m of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    out[m[1]] = m[2].startsWith('"') ? (JSON.parse(m[2]) as string) : m[2];
  }
  return out;
}

/** `COPY [--from=x] [--chown=...] src... dest`. */
export function copyArgs(args: string): { from?: string; sources: string[]; dest: string } {
  const words = execForm(args) ?? args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith("--"));
  const paths = words.filter((w) => !w.startsWith("--"));
  const from = flags.find((f) => f.startsWith("--from="))?.slice("--from=".length);
  return { from, sources: paths.slice(0, -1), dest: paths[paths.length - 1] };
}

/** `HEALTHCHECK [--opt=v ...] CMD [...]`: its options and command. */
export function healthcheck(args: string): { options: Record<string, string>; cmd: string[] } {
  const at = args.indexOf("CMD");
  const options = Object.fromEntries(
    args
      .slice(0, at)
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map((o) => o.replace(/^--/, "").split("=") as [string, string]),
  );
  const rest = args.slice(at + 3).trim();
  return { options, cmd: execForm(rest) ?? ["/bin/sh", "-c", rest] };
}

/** A RUN's command without its BuildKit flags (`--mount=…`, `--network=…`). */
export function runCommand(args: string): string {
  return args.replace(/^(?:--[a-z]+=\S+\s+)+/, "");
}

/** The final stage's value of every instruction of one kind (the last one wins for CMD and the like). */
export function instructions(stage: Stage, op: string): string[] {
  return stage.instructions.filter((i) => i.op === op).map((i) => i.args);
}

/** The steps docker/recipe.sh knows (its `case` labels). */
export function recipeSteps(): string[] {
  const text = readFileSync(join(ROOT, "docker/recipe.sh"), "utf8");
  return [...text.matchAll(/^ {2}([a-z-]+)\)$/gm)].map((m) => m[1]);
}

// ---- the build context ------------------------------------------------------------------------

/** .dockerignore's patterns as tests of a relative path (the subset of the syntax it uses). */
export function dockerignore(): (path: string) => boolean {
  const patterns = readFileSync(join(ROOT, ".dockerignore"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  if (patterns.some((p) => p.startsWith("!"))) throw new Error(".dockerignore: exceptions (!) are not understood by this test");
  const toRegExp = (p: string) =>
    new RegExp(
      `^${p
        .replace(/[.+^${}()|[\]\\]/g, "\\$&")
        .split("**/")
        .map((part) => part.replace(/\*/g, "[^/]*"))
        .join("(?:.*/)?")}(?:/.*)?$`,
    );
  const res = patterns.map(toRegExp);
  return (path) => res.some((r) => r.test(path));
}

/** The files `docker build` would send: what git tracks or would track, less .dockerignore. */
export function buildContext(): string[] {
  const listed = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "-z"], { cwd: ROOT, encoding: "utf8" })
    .split("\0")
    .filter(Boolean);
  const ignored = dockerignore();
  return [...new Set(listed)].filter((f) => !ignored(f) && existsSync(join(ROOT, f)));
}
