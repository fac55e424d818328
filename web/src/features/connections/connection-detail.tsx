"use client";

import { useState } from "react";
import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { Download, ExternalLink, KeyRound, Trash2 } from "lucide-react";
import { toast } from "sonner";

import { ConfirmButton } from "@/components/confirm-button";
import { CopyButton } from "@/components/copy-button";
import { LoadError } from "@/components/load-error";
import { PageHeader } from "@/components/page-header";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Skeleton } from "@/components/ui/skeleton";
import { api, errorMessage, type Connection, type ConnectionWithPassword } from "@/lib/api";
import { downloadText } from "@/lib/download";
import { formatTime } from "@/lib/format";
import { useResource } from "@/lib/use-resource";
import { deviceHref } from "@/features/devices/links";
import { ProtocolBadge } from "./connection-list";
import { EditConnection } from "./edit-connection";
import { LastReset } from "./last-reset";
import { PasswordDialog } from "./password-dialog";
import { ResetUsageButton } from "./reset-usage";
import { UsageBar } from "./usage-bar";

/** ConnectionDetail is a connection's page (?id=): usage, reset, settings, password, delete. */
export function ConnectionDetail() {
  const id = useSearchParams().get("id") ?? "";
  const router = useRouter();
  const conn = useResource(id ? `connection:${id}` : null, () => api.connection(id).then((r) => r.connection), 5000);
  const device = useResource(conn.data ? `device:${conn.data.device_id}` : null, () =>
    api.device(conn.data!.device_id).then((r) => r.device),
  );
  const [shown, setShown] = useState<ConnectionWithPassword | null>(null);

  if (!id) return <LoadError error={new Error("no connection id in the address")} retry={() => router.push("/connections/")} what="the connection" />;
  if (conn.error !== undefined && !conn.data) return <LoadError error={conn.error} retry={conn.reload} what="the connection" />;
  if (!conn.data) return <DetailSkeleton />;
  const c = conn.data;
  // A write answers the connection without what only reads add (last reset, quota workflow
  // link), which it does not change: keep those until the next read.
  const update = (next: Connection) => conn.mutate((prev) => ({ ...(prev ?? c), ...next }));

  return (
    <>
      <PageHeader
        title={<span data-testid="connection-title">{c.name}</span>}
        description={
          <span className="flex flex-wrap items-center gap-2">
            <ProtocolBadge protocol={c.protocol} />
            {c.enabled ? <Badge variant="outline">Enabled</Badge> : <Badge variant="secondary">Disabled</Badge>}
            <span>
              on{" "}
              <Link href={deviceHref(c.device_id)} className="underline underline-offset-4">
                {device.data?.name ?? "its device"}
              </Link>
            </span>
          </span>
        }
      >
        <ConfirmButton
          testId="regenerate"
          trigger={
            <Button variant="outline" data-testid="regenerate">
              <KeyRound />
              Regenerate password
            </Button>
          }
          title="Regenerate the password?"
          description="The current password stops working at once, and sessions logged in with it are disconnected. The new password is shown once."
          confirmLabel="Regenerate"
          onConfirm={async () => {
            try {
              const res = await api.regeneratePassword(c.id);
              update(res.connection);
              setShown(res);
            } catch (e) {
              toast.error(`Could not regenerate the password: ${errorMessage(e)}`);
            }
          }}
        />
        <ConfirmButton
          testId="delete-connection"
          destructive
          trigger={
            <Button variant="destructive" data-testid="delete-connection">
              <Trash2 />
              Delete
            </Button>
          }
          title={`Delete ${c.name}?`}
          description="Its credentials stop working at once and its sessions are disconnected. This cannot be undone."
          confirmLabel="Delete"
          onConfirm={async () => {
            try {
              await api.deleteConnection(c.id);
              toast.success(`${c.name} deleted.`);
              router.push("/connections/");
            } catch (e) {
              toast.error(`Could not delete: ${errorMessage(e)}`);
            }
          }}
        />
      </PageHeader>

      <div className="grid gap-6 lg:grid-cols-2">
        <Card>
          <CardHeader>
            <CardTitle>Usage</CardTitle>
            <CardDescription>Both directions, since the last reset.</CardDescription>
          </CardHeader>
          <CardContent className="grid gap-4">
            <UsageBar connection={c} className="text-sm" />
            <dl className="grid grid-cols-[auto_1fr] gap-x-4 gap-y-2 text-sm">
              <dt className="text-muted-foreground">Cut off</dt>
              <dd data-testid="cut-off">{c.cut_off ? `yes, since ${formatTime(c.cut_off_at)}` : "no"}</dd>
              <dt className="text-muted-foreground">Last reset</dt>
              <dd>
                <LastReset connection={c} long />
              </dd>
              {c.quota_workflow_url && (
                <>
                  <dt className="text-muted-foreground">Quota workflow</dt>
                  <dd>
                    <a href={c.quota_workflow_url} target="_blank" rel="noreferrer" className="inline-flex items-center gap-1 underline underline-offset-4">
                      Open in Temporal <ExternalLink className="size-3" aria-hidden />
                    </a>
                  </dd>
                </>
              )}
            </dl>
            <div>
              <ResetUsageButton connection={c} onReset={conn.mutate} />
            </div>
          </CardContent>
        </Card>

        <Card>
          <CardHeader>
            <CardTitle>Credentials</CardTitle>
            <CardDescription>The password is never shown again; regenerate it to get a new one.</CardDescription>
          </CardHeader>
          <CardContent className="grid gap-3 text-sm">
            <div className="flex items-center gap-2">
              <span className="text-muted-foreground w-24">Username</span>
              <code className="bg-muted rounded px-2 py-1 font-mono" data-testid="connection-username-value">
                {c.username}
              </code>
              <CopyButton value={c.username} size="icon" label="Copy username" />
            </div>
            <div className="flex items-center gap-2">
              <span className="text-muted-foreground w-24">Password</span>
              <span data-testid="password-hidden">•••••••• set {formatTime(c.password_changed_at)}</span>
            </div>
            {c.protocol === "openvpn" && (
              <div>
                <Button
                  variant="outline"
                  size="sm"
                  data-testid="profile-download"
                  onClick={async () => {
                    try {
                      downloadText(`${c.username}.ovpn`, await api.profile(c.id));
                    } catch (e) {
                      toast.error(`Could not download the profile: ${errorMessage(e)}`);
                    }
                  }}
                >
                  <Download />
                  Profile without password (.ovpn)
                </Button>
              </div>
            )}
          </CardContent>
        </Card>

        <Card className="lg:col-span-2">
          <CardHeader>
            <CardTitle>Settings</CardTitle>
          </CardHeader>
          <CardContent>
            <EditConnection key={c.id} connection={c} onSaved={update} />
          </CardContent>
        </Card>
      </div>
      <PasswordDialog shown={shown} onClose={() => setShown(null)} />
    </>
  );
}

function DetailSkeleton() {
  return (
    <div className="grid gap-6" aria-busy="true">
      <Skeleton className="h-8 w-64" />
      <div className="grid gap-6 lg:grid-cols-2">
        <Skeleton className="h-48" />
        <Skeleton className="h-48" />
      </div>
    </div>
  );
}
