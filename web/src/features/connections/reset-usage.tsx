"use client";

import { RotateCcw } from "lucide-react";
import { toast } from "sonner";

import { ConfirmButton } from "@/components/confirm-button";
import { Button } from "@/components/ui/button";
import { api, errorMessage, type Connection, type ConnectionDetail } from "@/lib/api";
import { formatBytes } from "@/lib/format";

/** ResetUsageButton resets a connection's usage after a confirmation and reports the new usage. */
export function ResetUsageButton({ connection: c, onReset }: { connection: Connection; onReset: (c: ConnectionDetail) => void }) {
  return (
    <ConfirmButton
      testId="reset-usage"
      trigger={
        <Button variant="outline" data-testid="reset-usage">
          <RotateCcw />
          Reset usage
        </Button>
      }
      title={`Reset the usage of ${c.name}?`}
      description={
        <>
          Its {formatBytes(c.bandwidth_used)} used so far are recorded and its usage starts again from zero.
          {c.cut_off && " The cutoff is lifted: the connection works again."}
        </>
      }
      confirmLabel="Reset usage"
      onConfirm={async () => {
        try {
          const after = await api.resetUsage(c.id);
          onReset(after);
          toast.success(`Usage of ${c.name} reset: now ${formatBytes(after.bandwidth_used)} (was ${formatBytes(c.bandwidth_used)}).`);
        } catch (e) {
          toast.error(`Could not reset usage: ${errorMessage(e)}`);
        }
      }}
    />
  );
}
