export function freePort(): Promise<number>;
export function startBroker(): Promise<{ url: string; stop: () => Promise<void> }>;
