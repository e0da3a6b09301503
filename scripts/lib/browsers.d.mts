export function runTmpDir(prefix?: string): string;
/** The run's browsers (Chromium main processes) under `dir`, with the platform session id each profile is named after. */
export function browsersOf(dir: string): { pid: number; sessionId: string | null }[];
/** SIGKILLs the processes of the run's browsers under `dir` (only those of `sessionIds` when given); returns how many processes. */
export function stopBrowsers(dir: string, sessionIds?: Iterable<string>): number;
export function cleanUpRun(dir: string): number;
