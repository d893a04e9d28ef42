// Types for scripts/cluster-lib.mjs (plain JS, run by `npm run cluster`; imported by test/helpers/cluster.ts).
import type { ChildProcess } from 'node:child_process';

export const ROOT: string;
export const PASSTHROUGH_ENV: readonly string[];

export interface ClusterOptions {
  /** nginx's port; 0 = a free one. Default 8080. */
  port?: number;
  /** Extra environment for both replicas (GATEWAY_API_KEYS, RATE_LIMIT_MAX, …). */
  env?: Record<string, string>;
  /** Extra environment for the mock upstream (MOCK_TOKENS_PER_SECOND, MOCK_FIRST_TOKEN_MS). */
  mockEnv?: Record<string, string>;
  /** false: no nginx even when installed (the entry point is then replica 1). Default true. */
  nginx?: boolean;
  /** The Redis to use when it answers PING; else a redis-server is started. Default redis://127.0.0.1:6379. */
  redisUrl?: string;
  /** Default 2. */
  replicas?: number;
  /** Per component. Default 15000. */
  readyTimeoutMs?: number;
  /** SIGTERM → SIGKILL delay in stop(). Default 3000. */
  stopGraceMs?: number;
  /** Keep the temp dir (logs, nginx.conf) after stop(). Default false. */
  keepDir?: boolean;
}

export interface ClusterProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>;
  tail(): string;
  logFile: string;
}

export interface Replica {
  name: string;
  port: number;
  url: string;
  logFile: string;
  proc: ClusterProcess | null;
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Spawns the process (again, on the same port); resolves once it logged its address. */
  start(): Promise<void>;
  /** Sends a signal to the replica's process group. */
  kill(signal?: NodeJS.Signals): void;
  /** The current process's exit; rejects after timeoutMs. */
  waitExit(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM (drain) if running, wait for the exit, start again on the same port. */
  restart(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface MockStats {
  requests: number;
  aborted: number;
  completed: number;
  failed: number;
}

export interface Cluster {
  /** Temp dir with the logs and nginx.conf. */
  dir: string;
  /** nginx's URL, or replica 1's without nginx. */
  entry: string;
  mock: { url: string; pid: number; logFile: string; proc: ClusterProcess; stats(): Promise<MockStats> };
  redis: { url: string; pid: number | null; external: boolean; proc?: ClusterProcess };
  replicas: Replica[];
  nginx: { url: string; pid: number; config: string; accessLog: string; errorLog: string; proc: ClusterProcess } | null;
  /** Stops everything this cluster started (idempotent) and removes the temp dir unless keepDir. */
  stop(): Promise<void>;
}

export function startCluster(opts?: ClusterOptions): Promise<Cluster>;
export function nginxConfig(opts: { dir: string; port: number; replicaPorts: number[] }): string;
export function freePort(): Promise<number>;
export function redisPing(url?: string, timeoutMs?: number): Promise<boolean>;
export function redisAvailable(url?: string): Promise<boolean>;
export function findNginx(): string | null;
export function findRedisServer(): string | null;
export function readLog(file: string): string;
