import { progressTone } from "@/components/tone";
import { Badge } from "@/components/ui/badge";
import { Progress } from "@/components/ui/progress";
import type { Connection } from "@/lib/api";
import { cn } from "@/lib/utils";
import { usageLevel, usagePercent, usageText } from "./usage";

const tone = {
  ok: progressTone.default,
  warn: progressTone.warning,
  over: progressTone.danger,
  unlimited: progressTone.muted,
} as const;

/** UsageBar shows "750 MB / 1 GB" over a bar: amber from 80 %, red with a "cut off" badge at 100 %. */
export function UsageBar({
  connection: c,
  className,
}: {
  connection: Pick<Connection, "bandwidth_used" | "bandwidth_limit" | "cut_off">;
  className?: string;
}) {
  const level = usageLevel(c);
  const pct = usagePercent(c);
  const text = usageText(c);
  return (
    <div className={cn("grid min-w-40 gap-1", className)} data-testid="usage" data-level={level}>
      <div className="flex items-center justify-between gap-2 text-xs">
        <span className="font-medium tabular-nums" data-testid="usage-text">
          {text}
        </span>
        {level === "over" ? (
          <Badge variant="destructive" data-testid="cut-off-badge">
            cut off
          </Badge>
        ) : (
          pct !== null && <span className="text-muted-foreground tabular-nums">{Math.floor(pct)} %</span>
        )}
      </div>
      <Progress
        value={pct ?? 0}
        aria-label="Bandwidth used"
        aria-valuenow={pct ?? undefined}
        aria-valuetext={pct === null ? text : `${text} (${Math.floor(pct)} %)`}
        className={tone[level]}
      />
    </div>
  );
}
