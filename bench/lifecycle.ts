/**
 * Runs a bench body with clean-up steps it registers as it starts things (servers, sinks, temp
 * folders): they run in reverse order once, whether the body ends, fails or is interrupted with
 * Ctrl-C (then the process exits 130). Nothing a bench starts is left running.
 */
export async function withCleanup<T>(body: (defer: (step: () => unknown) => void) => Promise<T>): Promise<T> {
  const steps: Array<() => unknown> = [];
  let cleaning: Promise<void> | undefined;
  const cleanUp = () =>
    (cleaning ??= (async () => {
      for (const step of steps.reverse()) {
        try {
          await step();
        } catch (error) {
          console.error('clean-up step failed:', error);
        }
      }
    })());
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await body((step) => steps.push(step));
  } catch (error) {
    if (interrupted) await new Promise(() => undefined); // process.exit(130) follows the clean-up
    throw error;
  } finally {
    if (!interrupted) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    await cleanUp();
  }
}

/** Exits with a usage error (status 2). */
export function usage(message: string): never {
  console.error(message);
  process.exit(2);
}

/** A whole-number option at least `min`, or a usage error naming it. */
export function wholeNumber(option: string, text: string | undefined, min = 1): number {
  const n = Number(text);
  if (text === undefined || !Number.isInteger(n) || n < min)
    usage(`--${option} must be a whole number${min > 0 ? ` of at least ${min}` : ''}`);
  return n;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}
