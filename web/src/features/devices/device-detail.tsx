"use client";

import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { ExternalLink, Network, Plus, RotateCcw, Trash2 } from "lucide-react";
import { toast } from "sonner";

import { ConfirmButton } from "@/components/confirm-button";
import { CopyButton } from "@/components/copy-button";
import { EmptyState } from "@/components/empty-state";
import { LoadError } from "@/components/load-error";
import { PageHeader } from "@/components/page-header";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Skeleton } from "@/components/ui/skeleton";
import { api, errorMessage, type DeviceDetail } from "@/lib/api";
import { formatTime } from "@/lib/format";
import { useNow } from "@/lib/use-now";
import { useResource } from "@/lib/use-resource";
import { ConnectionTable } from "@/features/connections/connection-list";
import { DeliveryRows } from "@/features/settings/delivery-log";
import { Battery, LastHeartbeat, StatusBadge, StatusSince, TunnelState } from "./status";
import { UptimeBar } from "./uptime-bar";

function Row({ label, children }: { label: string; children: React.ReactNode }) {
  return (
    <>
      <dt className="text-muted-foreground">{label}</dt>
      <dd className="min-w-0 break-words">{children}</dd>
    </>
  );
}

function MonitorLink({ device }: { device: DeviceDetail }) {
  if (device.monitor_workflow_url) {
    return (
      <a
        href={device.monitor_workflow_url}
        target="_blank"
        rel="noreferrer"
        className="inline-flex items-center gap-1 underline underline-offset-4"
        data-testid="monitor-link"
      >
        DeviceMonitor in the Temporal Web UI <ExternalLink className="size-3" aria-hidden />
      </a>
    );
  }
  return (
    <span className="flex items-center gap-2" data-testid="monitor-id">
      <code className="bg-muted min-w-0 rounded px-2 py-1 font-mono text-xs break-all">{device.monitor_workflow_id}</code>
      <CopyButton value={device.monitor_workflow_id} size="icon" label="Copy workflow id" />
    </span>
  );
}

/** DeviceDetail is a device's page (?id=): status, telemetry, 24-hour uptime, connections, alerts. */
export function DeviceDetail() {
  const id = useSearchParams().get("id") ?? "";
  const router = useRouter();
  const now = useNow();
  const device = useResource(id ? `device:${id}` : null, () => api.device(id).then((r) => r.device), 5000);
  const conns = useResource(id ? `device-connections:${id}` : null, () => api.connections(id), 5000);
  const alerts = useResource(
    id ? `device-alerts:${id}` : null,
    () => api.deliveries({ device_id: id, limit: 10 }).then((r) => r.deliveries),
    10000,
  );

  if (!id) return <LoadError error={new Error("no device id in the address")} retry={() => router.push("/devices/")} what="the device" />;
  if (device.error !== undefined && !device.data) return <LoadError error={device.error} retry={device.reload} what="the device" />;
  if (!device.data) {
    return (
      <div className="grid gap-6" aria-busy="true">
        <Skeleton className="h-8 w-64" />
        <Skeleton className="h-24" />
        <Skeleton className="h-48" />
      </div>
    );
  }
  const d = device.data;
  const t = d.telemetry;

  return (
    <>
      <PageHeader
        title={<span data-testid="device-title">{d.name}</span>}
        description={
          <span className="flex flex-wrap items-center gap-2">
            <StatusBadge status={d.status} />
            <StatusSince device={d} now={now} />
          </span>
        }
      >
        {(conns.data?.length ?? 0) > 0 && (
          <ConfirmButton
            testId="reset-device-usage"
            trigger={
              <Button variant="outline" data-testid="reset-device-usage">
                <RotateCcw />
                Reset usage of all
              </Button>
            }
            title={`Reset the usage of every connection on ${d.name}?`}
            description="Each connection's usage so far is recorded and starts again from zero; cutoffs are lifted."
            confirmLabel="Reset usage"
            onConfirm={async () => {
              try {
                const res = await api.resetDeviceUsage(d.id);
                toast.success(`Usage of ${res.resets.length} connections reset.`);
                await conns.reload();
              } catch (e) {
                toast.error(`Could not reset usage: ${errorMessage(e)}`);
              }
            }}
          />
        )}
        <ConfirmButton
          testId="delete-device"
          destructive
          trigger={
            <Button variant="destructive" data-testid="delete-device">
              <Trash2 />
              Delete
            </Button>
          }
          title={`Delete ${d.name}?`}
          description="The device can no longer heartbeat or carry traffic. Delete its connections first."
          confirmLabel="Delete"
          onConfirm={async () => {
            try {
              await api.deleteDevice(d.id);
              toast.success(`${d.name} deleted.`);
              router.push("/devices/");
            } catch (e) {
              toast.error(`Could not delete: ${errorMessage(e)}`);
            }
          }}
        />
      </PageHeader>

      <div className="grid gap-6">
        <Card>
          <CardHeader>
            <CardTitle>Uptime</CardTitle>
            <CardDescription>From the device&apos;s online and offline transitions.</CardDescription>
          </CardHeader>
          <CardContent>
            <UptimeBar deviceID={d.id} />
          </CardContent>
        </Card>

        <div className="grid gap-6 lg:grid-cols-2">
          <Card>
            <CardHeader>
              <CardTitle>Status</CardTitle>
            </CardHeader>
            <CardContent>
              <dl className="grid grid-cols-[auto_1fr] gap-x-4 gap-y-2 text-sm">
                <Row label="Last heartbeat">
                  <LastHeartbeat at={d.last_heartbeat_at} now={now} />
                </Row>
                <Row label="Status since">{formatTime(d.status_changed_at)}</Row>
                <Row label="Enrolled">{formatTime(d.enrolled_at)}</Row>
                <Row label="Tunnel">
                  <TunnelState device={d} />
                </Row>
                <Row label="Monitor">
                  <MonitorLink device={d} />
                </Row>
              </dl>
            </CardContent>
          </Card>
          <Card>
            <CardHeader>
              <CardTitle>Telemetry</CardTitle>
              <CardDescription>As of the last heartbeat.</CardDescription>
            </CardHeader>
            <CardContent>
              <dl className="grid grid-cols-[auto_1fr] gap-x-4 gap-y-2 text-sm" data-testid="telemetry">
                <Row label="Battery">
                  <Battery device={d} />
                </Row>
                <Row label="Signal">{t.signal_dbm !== null && t.signal_dbm !== undefined ? `${t.signal_dbm} dBm` : "—"}</Row>
                <Row label="Carrier">{t.carrier ?? "—"}</Row>
                <Row label="Network">{t.network_type ?? "—"}</Row>
                <Row label="Mobile IP">{t.cellular_ip ?? "—"}</Row>
                <Row label="App version">{t.app_version ?? "—"}</Row>
              </dl>
            </CardContent>
          </Card>
        </div>

        <section className="grid gap-3" aria-labelledby="device-connections">
          <div className="flex items-center justify-between gap-2">
            <h2 id="device-connections" className="text-lg font-semibold">
              Connections
            </h2>
            <Button variant="outline" size="sm" asChild>
              <Link href={`/connections/new/?device_id=${encodeURIComponent(d.id)}`}>
                <Plus />
                New connection
              </Link>
            </Button>
          </div>
          {conns.data === undefined ? (
            <Skeleton className="h-24" />
          ) : conns.data.length === 0 ? (
            <EmptyState icon={Network} title="No connections on this device" />
          ) : (
            <ConnectionTable connections={conns.data} showDevice={false} />
          )}
        </section>

        <section className="grid gap-3" aria-labelledby="device-alerts">
          <div className="flex items-center justify-between gap-2">
            <h2 id="device-alerts" className="text-lg font-semibold">
              Recent alerts
            </h2>
            <Link href={`/settings/?device_id=${encodeURIComponent(d.id)}#deliveries`} className="text-sm underline underline-offset-4">
              All of this device&apos;s deliveries
            </Link>
          </div>
          {alerts.data === undefined ? (
            <Skeleton className="h-24" />
          ) : (
            <DeliveryRows deliveries={alerts.data} compact empty="No alerts for this device yet." />
          )}
        </section>
      </div>
    </>
  );
}
