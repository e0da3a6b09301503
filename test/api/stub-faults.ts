/**
 * Makes the Worker's Durable Object calls fail on purpose, through the seam in
 * src/stubs.ts (`stubHooks.wrap`): every stub poolOf/tenantOf/registryOf
 * return is wrapped in a Proxy, and a call matching a rule throws the rule's
 * error, `times` times, either instead of reaching the object ("before") or
 * after the object did the work and answered ("after": the answer is lost).
 * Every call of a method some rule names is counted and its arguments kept.
 * The objects run in the test's isolate, so their own calls to each other
 * (a pool claiming capacity from its tenant) pass through the same hook:
 * rules name the object kind, the method and, usually, the object's name.
 */
import { stubHooks, type StubKind } from "../../src/stubs";

export interface FaultRule {
  kind: StubKind;
  /** The object's name: "tenant/pool", the tenant, or "registry"; any object of the kind if absent. */
  name?: string;
  method: string;
  /** How many of the next matching calls fail. */
  times: number;
  /** What the failing call throws. */
  error?: () => unknown;
  /** Instead of throwing, the failing call answers this without reaching the object (an answer the Worker does not expect). */
  answer?: () => unknown;
  /** "before" (default): the call never reaches the object. "after": it does, then its answer is lost. */
  when?: "before" | "after";
  /** With "after": runs once the object has answered, before the error is thrown (e.g. to restart every object). */
  afterCall?: () => Promise<void>;
}

export interface Faults {
  /** Calls made so far of the method of `rule`, on objects `rule` matches (faulted or not). */
  calls(rule: FaultRule): number;
  /** The arguments of those calls, in order. */
  args(rule: FaultRule): unknown[][];
  /** Turns the hook off (also done by the next `injectFaults`). */
  restore(): void;
}

const matches = (rule: FaultRule, kind: StubKind, name: string, method: string) =>
  rule.kind === kind && (rule.name === undefined || rule.name === name) && rule.method === method;

export function injectFaults(...rules: FaultRule[]): Faults {
  const seen = new Map<FaultRule, unknown[][]>(rules.map((rule) => [rule, []]));
  stubHooks.wrap = <T extends object>(kind: StubKind, name: string, stub: T): T =>
    new Proxy(stub, {
      get(target, property) {
        const value = (target as Record<string | symbol, unknown>)[property];
        if (typeof property !== "string") return value;
        const named = rules.filter((rule) => matches(rule, kind, name, property));
        if (named.length === 0) return value;
        return async (...args: unknown[]) => {
          for (const rule of named) seen.get(rule)!.push(args);
          const rule = named.find((r) => r.times > 0);
          const real = () => (target as Record<string, (...a: unknown[]) => Promise<unknown>>)[property]!(...args);
          if (!rule) return real();
          rule.times -= 1;
          if (rule.answer) return rule.answer();
          if (rule.when === "after") {
            await real();
            await rule.afterCall?.();
          }
          throw rule.error?.() ?? new Error("injected fault");
        };
      },
    });
  return {
    calls: (rule) => seen.get(rule)?.length ?? 0,
    args: (rule) => seen.get(rule) ?? [],
    restore: () => {
      stubHooks.wrap = undefined;
    },
  };
}

/** Errors as Durable Object calls throw them (as the platform documents them: `.overloaded`, `.retryable`, resets, storage timeouts). */
export const objectErrors = {
  overloaded: () => Object.assign(new Error("Durable Object is overloaded. Too many requests queued."), { overloaded: true }),
  retryable: () => Object.assign(new Error("Network connection lost."), { retryable: true }),
  codeUpdated: () => Object.assign(new Error("Durable Object reset because its code was updated."), { retryable: true }),
  storageTimeout: () => new Error("Durable Object storage operation exceeded timeout which caused object to be reset."),
  internal: () => new Error("internal error; reference = 0123456789abcdefghij"),
} as const;

export type ObjectErrorKind = keyof typeof objectErrors;
