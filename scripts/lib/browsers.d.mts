export function runTmpDir(prefix?: string): string;
export function stopBrowsers(dir: string): number;
export function cleanUpRun(dir: string): number;
