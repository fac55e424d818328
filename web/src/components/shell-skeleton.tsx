import { Button } from "@/components/ui/button";
import { Skeleton } from "@/components/ui/skeleton";

/** ShellSkeleton stands in for the dashboard while the session loads, or says why it could not. */
export function ShellSkeleton({ error, retry }: { error: string | null; retry: () => void }) {
  return (
    <div className="min-h-dvh md:grid md:grid-cols-[15rem_1fr]" aria-busy={!error}>
      <aside className="bg-sidebar hidden border-r p-4 md:block">
        <Skeleton className="mb-6 h-7 w-28" />
        <div className="grid gap-2">
          {Array.from({ length: 4 }, (_, i) => (
            <Skeleton key={i} className="h-8 w-full" />
          ))}
        </div>
      </aside>
      <div className="p-6">
        {error ? (
          <div className="mx-auto mt-16 flex max-w-md flex-col items-center gap-4 text-center" role="alert">
            <h1 className="text-lg font-semibold">The dashboard cannot reach the API</h1>
            <p className="text-muted-foreground text-sm">{error}</p>
            <Button onClick={retry}>Try again</Button>
          </div>
        ) : (
          <>
            <Skeleton className="mb-6 h-8 w-48" />
            <Skeleton className="h-64 w-full" />
          </>
        )}
      </div>
    </div>
  );
}
