import { Skeleton } from "@/components/ui/skeleton";

/** TableSkeleton stands in for a table while it loads. */
export function TableSkeleton({ columns, rows = 4 }: { columns: number; rows?: number }) {
  return (
    <div className="grid gap-3 rounded-xl border p-4" aria-busy="true" aria-label="Loading" data-testid="table-skeleton">
      {Array.from({ length: rows }, (_, r) => (
        <div key={r} className="grid gap-3" style={{ gridTemplateColumns: `repeat(${columns}, minmax(0, 1fr))` }}>
          {Array.from({ length: columns }, (_, c) => (
            <Skeleton key={c} className="h-5" />
          ))}
        </div>
      ))}
    </div>
  );
}
