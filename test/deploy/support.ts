/**
 * Reading the deployment files the way their tools do: the Dockerfile's instructions and stages,
 * `.dockerignore` patterns, multi-document YAML, PromQL metric names and label names, and the
 * Prometheus/Grafana files under `deploy/`. Shared by `test/deploy/*` and the e2e tests that run what
 * these files describe.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const deployDir = join(root, 'deploy');

// ---------------------------------------------------------------------------------------------------
// Dockerfile

export interface Instruction {
  /** Upper-cased: FROM, RUN, COPY, … */
  keyword: string;
  /** Everything after the keyword, continuation lines joined. */
  args: string;
  /** 1-based line of the keyword. */
  line: number;
}

export interface Stage {
  base: string;
  name: string | undefined;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** ARGs declared before the first FROM (usable in FROM lines), with their defaults. */
  globalArgs: Record<string, string | undefined>;
  stages: Stage[];
}

/** Parses a Dockerfile: comments dropped, `\` continuations joined, instructions grouped by stage. */
export function parseDockerfile(text: string): Dockerfile {
  const instructions: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i]!.trim();
    if (first === '' || first.startsWith('#')) continue;
    const start = i + 1;
    let logical = first;
    while (logical.endsWith('\\') && i + 1 < lines.length) {
      logical = logical.slice(0, -1);
      i++;
      const next = lines[i]!.trim();
      if (next.startsWith('#')) continue;
      logical += ` ${next}`;
    }
    const match = /^(\S+)\s*(.*)$/s.exec(logical)!;
    instructions.push({ keyword: match[1]!.toUpperCase(), args: match[2]!.replace(/\s+/g, ' ').trim(), line: start });
  }
  const globalArgs: Record<string, string | undefined> = {};
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const parts = ins.args.split(' ').filter((p) => !p.startsWith('--'));
      const asIndex = parts.findIndex((p) => p.toUpperCase() === 'AS');
      stages.push({
        base: substitute(parts[0]!, globalArgs),
        name: asIndex >= 0 ? parts[asIndex + 1] : undefined,
        instructions: [],
      });
    } else if (stages.length === 0) {
      if (ins.keyword === 'ARG') Object.assign(globalArgs, parseArg(ins.args));
    } else {
      stages[stages.length - 1]!.instructions.push(ins);
    }
  }
  return { globalArgs, stages };
}

function parseArg(args: string): Record<string, string | undefined> {
  const eq = args.indexOf('=');
  return eq < 0 ? { [args]: undefined } : { [args.slice(0, eq)]: unquote(args.slice(eq + 1)) };
}

function unquote(value: string): string {
  return /^(["']).*\1$/.test(value) ? value.slice(1, -1) : value;
}

/** `$NAME` and `${NAME}` from `vars`; unknown names are left as they are. */
export function substitute(value: string, vars: Record<string, string | undefined>): string {
  return value.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, a?: string, b?: string) => vars[(a ?? b)!] ?? whole);
}

export function instructions(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.keyword === keyword);
}

/** The last instruction of a kind in a stage (the one that counts for ENTRYPOINT, CMD, USER, …). */
export function last(stage: Stage, keyword: string): Instruction | undefined {
  return instructions(stage, keyword).at(-1);
}

/** An exec-form (JSON array) argument list; throws for the shell form. */
export function execForm(args: string): string[] {
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((p) => typeof p === 'string')) throw new Error(`not exec form: ${args}`);
  return parsed;
}

/** ARG defaults of a stage (after global ARGs), and ENV values, for substitution in later lines. */
export function stageVars(file: Dockerfile, stage: Stage): Record<string, string | undefined> {
  const vars: Record<string, string | undefined> = { ...file.globalArgs };
  for (const ins of stage.instructions) {
    if (ins.keyword === 'ARG') Object.assign(vars, parseArg(ins.args));
    if (ins.keyword === 'ENV') Object.assign(vars, parseEnv(ins.args));
  }
  return vars;
}

/** `ENV A=1 B="two"` (or the legacy `ENV A 1`). */
export function parseEnv(args: string): Record<string, string> {
  if (!/^\w+=/.test(args)) {
    const [name, ...rest] = args.split(' ');
    return { [name!]: rest.join(' ') };
  }
  const out: Record<string, string> = {};
  for (const m of args.matchAll(/(\w+)=("[^"]*"|'[^']*'|\S+)/g)) out[m[1]!] = unquote(m[2]!);
  return out;
}

export interface Copy {
  from: string | undefined;
  sources: string[];
  dest: string;
  line: number;
}

export function copies(file: Dockerfile, stage: Stage): Copy[] {
  const vars = stageVars(file, stage);
  return instructions(stage, 'COPY').map((ins) => {
    const words = ins.args.startsWith('[') ? execForm(ins.args) : ins.args.split(' ');
    const flags = words.filter((w) => w.startsWith('--'));
    const paths = words.filter((w) => !w.startsWith('--')).map((w) => substitute(w, vars));
    const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
    return { from, sources: paths.slice(0, -1), dest: paths.at(-1)!, line: ins.line };
  });
}

/** WORKDIR in effect at the end of a stage (absolute). */
export function workdir(stage: Stage): string {
  let dir = '/';
  for (const ins of instructions(stage, 'WORKDIR')) dir = resolve(dir, ins.args);
  return dir;
}

export interface Healthcheck {
  options: Record<string, string>;
  command: string[];
}

export function healthcheck(stage: Stage): Healthcheck | undefined {
  const ins = last(stage, 'HEALTHCHECK');
  if (!ins) return undefined;
  const match = /^((?:--\S+\s+)*)CMD\s+(.*)$/s.exec(ins.args);
  if (!match) throw new Error(`HEALTHCHECK without CMD: ${ins.args}`);
  const options: Record<string, string> = {};
  for (const m of match[1]!.matchAll(/--([\w-]+)=(\S+)/g)) options[m[1]!] = m[2]!;
  return { options, command: execForm(match[2]!) };
}

export function readDockerfile(): Dockerfile {
  return parseDockerfile(readFileSync(join(root, 'Dockerfile'), 'utf8'));
}

// ---------------------------------------------------------------------------------------------------
// .dockerignore

/**
 * Whether `.dockerignore` excludes `path` (relative to the build context): Docker's rules, for the
 * pattern kinds used here — `*`, `?`, `**`, a leading `!` re-including, the last matching line
 * winning, and a directory's exclusion covering everything below it.
 */
export function dockerIgnored(ignoreText: string, path: string): boolean {
  const rules = ignoreText
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, '');
      const source = pattern
        .split('/')
        .map((part) =>
          part === '**'
            ? '.*'
            : part
                .replace(/[.+^${}()|[\]\\]/g, '\\$&')
                .replace(/\*/g, '[^/]*')
                .replace(/\?/g, '[^/]'),
        )
        .join('/')
        .replace(/\.\*\//g, '(?:.*/)?');
      return { negate, regex: new RegExp(`^${source}$`) };
    });
  const parts = path.replace(/^\.\/+/, '').split('/');
  let ignored = false;
  for (let depth = 1; depth <= parts.length; depth++) {
    const prefix = parts.slice(0, depth).join('/');
    for (const rule of rules) if (rule.regex.test(prefix)) ignored = !rule.negate;
    if (ignored && depth < parts.length) return true;
  }
  return ignored;
}

// ---------------------------------------------------------------------------------------------------
// YAML

/** Every document of a (multi-document) YAML file; throws on any parse error. Merge keys (`<<`) on. */
export function readYaml(path: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'), { merge: true, prettyErrors: true });
  if (!Array.isArray(docs)) throw new Error(`${path}: not YAML`);
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors.map((e) => e.message).join('\n')}`);
  }
  return docs.map((d) => d.toJS() as unknown).filter((d) => d !== null && d !== undefined);
}

export function readYamlOne<T>(path: string): T {
  const docs = readYaml(path);
  if (docs.length !== 1) throw new Error(`${path}: expected one document, found ${docs.length}`);
  return docs[0] as T;
}

/** Every file under `dir` (recursively) whose name ends in one of `extensions`, relative to `root`. */
export function filesUnder(dir: string, extensions: string[]): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...filesUnder(path, extensions));
    else if (extensions.some((e) => name.endsWith(e))) out.push(relative(root, path));
  }
  return out.sort();
}

// ---------------------------------------------------------------------------------------------------
// Prometheus and Grafana files

export interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
export interface RuleGroup {
  name: string;
  rules: AlertRule[];
}

export function alertGroups(): RuleGroup[] {
  return readYamlOne<{ groups: RuleGroup[] }>(join(deployDir, 'prometheus', 'alerts.yml')).groups;
}

export function alertRules(): AlertRule[] {
  return alertGroups().flatMap((g) => g.rules);
}

export interface GrafanaTarget {
  expr?: string;
  legendFormat?: string;
  refId: string;
}
export interface GrafanaPanel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: GrafanaTarget[];
  panels?: GrafanaPanel[];
}
export interface GrafanaVariable {
  name: string;
  type: string;
  query: string | { query: string };
  definition?: string;
}
export interface GrafanaDashboard {
  uid: string;
  title: string;
  panels: GrafanaPanel[];
  templating: { list: GrafanaVariable[] };
}

export function dashboard(): GrafanaDashboard {
  return JSON.parse(readFileSync(join(deployDir, 'grafana', 'dashboards', 'sluice.json'), 'utf8')) as GrafanaDashboard;
}

export function dashboardPanels(d: GrafanaDashboard = dashboard()): GrafanaPanel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Every PromQL expression of the dashboard's panels, with the panel's title. */
export function dashboardExprs(d: GrafanaDashboard = dashboard()): Array<{ panel: string; expr: string }> {
  return dashboardPanels(d).flatMap((p) =>
    (p.targets ?? []).flatMap((t) => (t.expr ? [{ panel: p.title, expr: t.expr }] : [])),
  );
}

/**
 * A Grafana query made plain PromQL: `$__rate_interval` and friends become a duration, a multi-value
 * variable matches anything, others take `values[name]`.
 */
export function grafanaToPromQL(expr: string, values: Record<string, string> = {}): string {
  return expr
    .replace(/\$__(rate_interval|interval|range)\b/g, '1m')
    .replace(/\$\{?(\w+)\}?/g, (_whole, name: string) => values[name] ?? '.*');
}

// ---------------------------------------------------------------------------------------------------
// PromQL

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'offset',
  'bool',
  'inf',
  'nan',
  'atan2',
]);

/** `s` with string literals blanked out (same length), so no label value looks like a name. */
function blankStrings(s: string): string {
  return s.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, (m) => ' '.repeat(m.length));
}

/** Index of the parenthesis closing the one at `open`. */
function closing(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === '(') depth++;
    else if (s[i] === ')' && --depth === 0) return i;
  }
  throw new Error(`unbalanced parentheses in ${s}`);
}

/** Metric names a PromQL expression selects (functions, keywords, labels and durations left out). */
export function metricNames(expr: string): string[] {
  const s = blankStrings(expr)
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // ranges, subqueries
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // label lists
    .replace(/\boffset\s+-?\w+/g, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/(?<![\w:.$])([a-zA-Z_:][\w:]*)(?![\w:])\s*(\()?/g)) {
    const [, name, call] = m;
    if (call || KEYWORDS.has(name!.toLowerCase())) continue;
    names.add(name!);
  }
  return [...names];
}

/** `metric{label="…", …}` selectors: each metric with the label names it matches on. */
export function selectorLabels(expr: string): Array<{ metric: string; labels: string[] }> {
  const s = blankStrings(expr);
  const out: Array<{ metric: string; labels: string[] }> = [];
  for (const m of s.matchAll(/([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}/g)) {
    const labels = [...m[2]!.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]!);
    out.push({ metric: m[1]!, labels });
  }
  return out;
}

/** `sum by (a, b) (inner)` / `sum(inner) by (a)`: each grouping with the metrics of its operand. */
export function groupings(expr: string): Array<{ labels: string[]; metrics: string[] }> {
  const s = blankStrings(expr);
  const out: Array<{ labels: string[]; metrics: string[] }> = [];
  for (const m of s.matchAll(/\b(by|without)\s*\(([^)]*)\)/g)) {
    if (m[1] === 'without') continue;
    const labels = m[2]!
      .split(',')
      .map((l) => l.trim())
      .filter(Boolean);
    const after = m.index + m[0].length;
    const rest = s.slice(after);
    let operand: string;
    if (/^\s*\(/.test(rest)) {
      // Prefix form: `sum by (x) ( operand )`.
      const open = after + rest.indexOf('(');
      operand = s.slice(open, closing(s, open) + 1);
    } else {
      // Suffix form: `sum( operand ) by (x)`: the call just before.
      const before = s.slice(0, m.index).trimEnd();
      let depth = 0;
      let i = before.length - 1;
      for (; i >= 0; i--) {
        if (before[i] === ')') depth++;
        else if (before[i] === '(' && --depth === 0) break;
      }
      operand = before.slice(i);
    }
    out.push({ labels, metrics: metricNames(operand) });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Processes

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (never rejects: the exit code is in the result). */
export function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolveRun) => {
    execFile(
      command,
      args,
      {
        cwd: options.cwd ?? root,
        env: options.env ?? process.env,
        timeout: options.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolveRun({ code, stdout: String(stdout), stderr: String(stderr) || (error && !stderr ? error.message : '') });
      },
    );
  });
}
