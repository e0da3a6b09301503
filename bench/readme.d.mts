export const README: string;
/** `text` with the block `name` (between `<!-- name -->` and `<!-- /name -->`) holding `body`; throws without both markers, once each, in order. */
export function replaceBlock(text: string, name: string, body: string): string;
export function writeReadmeBlock(name: string, body: string): void;
export function lifecycleBlock(results: unknown): string;
export function benchBlock(results: unknown): string;
/** The README's blocks by name, from bench/lifecycle.json's and bench/results.json's contents. */
export function readmeBlocks(lifecycle: unknown, bench: unknown): Record<string, string>;
