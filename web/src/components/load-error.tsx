import { CircleAlert } from "lucide-react";

import { Button } from "@/components/ui/button";
import { errorMessage } from "@/lib/api";

/** LoadError says that something could not be loaded, with the API's message and a retry. */
export function LoadError({ error, retry, what }: { error: unknown; retry: () => void; what: string }) {
  return (
    <div
      className="border-destructive/30 bg-destructive/5 flex flex-wrap items-center gap-3 rounded-xl border p-4 text-sm"
      role="alert"
      data-testid="load-error"
    >
      <CircleAlert className="text-destructive size-5" aria-hidden />
      <span className="flex-1">
        Could not load {what}: {errorMessage(error)}
      </span>
      <Button variant="outline" size="sm" onClick={retry}>
        Try again
      </Button>
    </div>
  );
}
