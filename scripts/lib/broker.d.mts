export function freePort(): Promise<number>;
export function startBroker(options?: {
  vars?: Record<string, string>;
  state?: string;
  port?: number;
  /** Each chunk wrangler writes (stdout and stderr). */
  onOutput?: (chunk: string) => void;
}): Promise<{
  url: string;
  state: string;
  /** TMPDIR of this broker's Miniflare (its browsers' profiles live there). */
  tmp: string;
  stop: () => Promise<void>;
  kill: () => Promise<void>;
}>;
