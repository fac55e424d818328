"use client";

import { useEffect, useState } from "react";
import { CircleCheck, ExternalLink } from "lucide-react";

import { badgeTone, progressTone } from "@/components/tone";
import { LoadError } from "@/components/load-error";
import { PageHeader } from "@/components/page-header";
import { Badge } from "@/components/ui/badge";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Progress } from "@/components/ui/progress";
import { Skeleton } from "@/components/ui/skeleton";
import { api, type PasswordMigration } from "@/lib/api";
import { formatDuration, formatTime } from "@/lib/format";
import { useResource } from "@/lib/use-resource";

import {
  migrationPercent,
  migrationPercentText,
  migrationProgressText,
  migrationRefreshMs,
  migrationRemainingMs,
} from "./progress";

const statusBadge: Record<
  PasswordMigration["status"],
  { label: string; variant: "secondary" | "outline" | "destructive"; className?: string }
> = {
  not_started: { label: "Not started", variant: "secondary" },
  running: { label: "Running", variant: "outline", className: badgeTone.warning },
  completed: { label: "Completed", variant: "outline", className: badgeTone.success },
  failed: { label: "Failed", variant: "destructive" },
};

function Stat({ label, children }: { label: string; children: React.ReactNode }) {
  return (
    <div className="grid gap-1">
      <dt className="text-muted-foreground text-xs">{label}</dt>
      <dd className="text-lg font-semibold tabular-nums">{children}</dd>
    </div>
  );
}

/**
 * PasswordMigrationView follows the one-time hashing of legacy plaintext passwords: every 2 s
 * while it runs (see migrationRefreshMs).
 */
export function PasswordMigrationView() {
  const [refresh, setRefresh] = useState(2000);
  const m = useResource("password-migration", () => api.passwordMigration(), refresh);
  const want = migrationRefreshMs(m.data);
  useEffect(() => setRefresh(want), [want]);
  return (
    <>
      <PageHeader
        title="Password migration"
        description="The one-time job that replaces legacy plaintext proxy passwords with bcrypt hashes."
      />
      {m.error !== undefined && !m.data ? (
        <LoadError error={m.error} retry={m.reload} what="the migration status" />
      ) : !m.data ? (
        <Skeleton className="h-56 max-w-3xl" />
      ) : (
        <MigrationCard m={m.data} />
      )}
    </>
  );
}

function MigrationCard({ m }: { m: PasswordMigration }) {
  const badge = statusBadge[m.status] ?? statusBadge.not_started;
  const pct = migrationPercent(m);
  const eta = migrationRemainingMs(m);
  return (
    <Card className="max-w-3xl" data-testid="migration">
      <CardHeader>
        <CardTitle className="flex items-center gap-2">
          Status
          <Badge variant={badge.variant} className={badge.className} data-testid="migration-status">
            {badge.label}
          </Badge>
        </CardTitle>
        <CardDescription>
          {m.status === "not_started"
            ? m.total > 0
              ? "Legacy plaintext passwords wait for the migration: cellgate migrate starts it."
              : "No legacy plaintext passwords to migrate."
            : m.status === "completed"
              ? "Every legacy password is hashed and its plaintext removed."
              : m.status === "failed"
                ? "The migration stopped. Rows it hashed stay hashed; started again, it takes the rest."
                : "Hashing in batches; each hash is verified before the plaintext is removed."}
        </CardDescription>
      </CardHeader>
      <CardContent className="grid gap-6">
        <div className="grid gap-2">
          <div className="flex justify-between text-sm">
            <span className="tabular-nums" data-testid="migration-progress-text">
              {migrationProgressText(m)}
            </span>
            <span className="tabular-nums" data-testid="migration-percent">
              {migrationPercentText(m)}
            </span>
          </div>
          {/* The shadcn Progress keeps value for its bar: the ARIA values are set here. */}
          <Progress
            value={pct}
            aria-label="Migration progress"
            aria-valuenow={Math.round(pct * 10) / 10}
            aria-valuetext={`${migrationProgressText(m)}, ${migrationPercentText(m)}`}
            data-testid="migration-progress"
            className={m.status === "failed" ? progressTone.danger : m.status === "completed" ? progressTone.success : undefined}
          />
        </div>
        <dl className="grid grid-cols-2 gap-4 sm:grid-cols-4">
          <Stat label="Hashed">{m.done.toLocaleString("en-US")}</Stat>
          <Stat label="Failed">{m.failed.toLocaleString("en-US")}</Stat>
          <Stat label="Rows per second">{m.rows_per_second ? m.rows_per_second.toFixed(1) : "—"}</Stat>
          <Stat label="Time left">{eta !== null ? formatDuration(eta) : "—"}</Stat>
        </dl>
        <dl className="grid grid-cols-[auto_1fr] gap-x-4 gap-y-2 text-sm">
          <dt className="text-muted-foreground">Started</dt>
          <dd data-testid="migration-started">{formatTime(m.started_at)}</dd>
          <dt className="text-muted-foreground">Finished</dt>
          <dd data-testid="migration-finished">{formatTime(m.finished_at)}</dd>
          {m.workflow_url && (
            <>
              <dt className="text-muted-foreground">Workflow</dt>
              <dd>
                <a
                  href={m.workflow_url}
                  target="_blank"
                  rel="noreferrer"
                  className="inline-flex items-center gap-1 underline underline-offset-4"
                  data-testid="migration-workflow"
                >
                  {m.status === "not_started" ? "PasswordMigration runs" : "This PasswordMigration run"} in the Temporal Web UI{" "}
                  <ExternalLink className="size-3" aria-hidden />
                </a>
              </dd>
            </>
          )}
        </dl>
        {m.error && (
          <p className="border-destructive/30 bg-destructive/5 rounded-md border p-3 text-sm" role="alert" data-testid="migration-error">
            {m.error}
          </p>
        )}
        {m.status === "completed" && m.failed === 0 && (
          <p className="flex items-center gap-2 text-sm text-green-700">
            <CircleCheck className="size-4" aria-hidden /> No plaintext passwords are left.
          </p>
        )}
      </CardContent>
    </Card>
  );
}
