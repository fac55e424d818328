"use client";

import { useCallback, useEffect, useMemo, useState } from "react";
import { useSearchParams } from "next/navigation";
import { Inbox, RotateCw } from "lucide-react";
import { toast } from "sonner";

import { EmptyState } from "@/components/empty-state";
import { LoadError } from "@/components/load-error";
import { TableSkeleton } from "@/components/table-skeleton";
import { badgeTone } from "@/components/tone";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Select, SelectContent, SelectItem, SelectTrigger, SelectValue } from "@/components/ui/select";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { api, errorMessage, type Delivery, type DeliveryStatus, type Device, type WebhookEventType } from "@/lib/api";
import { formatTime } from "@/lib/format";
import { useResource } from "@/lib/use-resource";

/** The event types the log can be filtered by. */
export const eventTypes = [
  "device.offline",
  "device.online",
  "connection.quota_warning",
  "connection.quota_exceeded",
  "webhook.test",
] as const satisfies readonly WebhookEventType[];

const statusBadge = {
  delivered: { variant: "outline", className: badgeTone.success },
  pending: { variant: "outline", className: badgeTone.warning },
  failed: { variant: "destructive", className: "" },
  skipped: { variant: "secondary", className: "" },
} as const satisfies Record<DeliveryStatus, { variant: string; className: string }>;

/** DeliveryStatusBadge shows a delivery's status. */
export function DeliveryStatusBadge({ status }: { status: Delivery["status"] }) {
  const b = statusBadge[status] ?? statusBadge.skipped;
  return (
    <Badge variant={b.variant} className={b.className} data-testid="delivery-status">
      {status}
    </Badge>
  );
}

function RedeliverButton({ delivery, onDone }: { delivery: Delivery; onDone?: () => void }) {
  const [busy, setBusy] = useState(false);
  return (
    <Button
      variant="ghost"
      size="sm"
      disabled={busy}
      data-testid="redeliver"
      aria-label={`Redeliver ${delivery.type} of ${formatTime(delivery.created_at)}`}
      onClick={async () => {
        setBusy(true);
        try {
          await api.redeliver(delivery.id);
          toast.success("Redelivery started; the log shows its outcome after the first attempt.");
          onDone?.();
        } catch (e) {
          toast.error(`Could not redeliver: ${errorMessage(e)}`);
        } finally {
          setBusy(false);
        }
      }}
    >
      <RotateCw />
      Redeliver
    </Button>
  );
}

/** DeliveryRows is a table of logged webhook events; compact leaves out the device and error columns. */
export function DeliveryRows({
  deliveries,
  devices,
  compact,
  empty,
  onRedelivered,
}: {
  deliveries: Delivery[];
  devices?: Device[];
  compact?: boolean;
  empty: string;
  onRedelivered?: () => void;
}) {
  if (deliveries.length === 0) {
    return (
      <EmptyState icon={Inbox} title={empty} testId="deliveries-empty">
        Events appear here when a device goes offline or comes back, when a quota is reached, and when you send a test.
      </EmptyState>
    );
  }
  const names = new Map(devices?.map((d) => [d.id, d.name]));
  return (
    <div className="min-w-0 rounded-xl border">
      <Table data-testid="deliveries-table">
        <TableHeader>
          <TableRow>
            <TableHead>Time</TableHead>
            <TableHead>Event</TableHead>
            {!compact && <TableHead className="hidden md:table-cell">Device</TableHead>}
            <TableHead>Status</TableHead>
            <TableHead className="hidden sm:table-cell">Attempts</TableHead>
            <TableHead className="hidden sm:table-cell">Response</TableHead>
            {!compact && <TableHead className="hidden lg:table-cell">Last error</TableHead>}
            <TableHead>
              <span className="sr-only">Actions</span>
            </TableHead>
          </TableRow>
        </TableHeader>
        <TableBody>
          {deliveries.map((d) => (
            <TableRow key={d.id} data-testid="delivery-row" data-type={d.type} data-device-id={d.device_id ?? ""} data-status={d.status}>
              <TableCell>{formatTime(d.created_at)}</TableCell>
              <TableCell className="font-mono text-xs">{d.type}</TableCell>
              {!compact && (
                <TableCell className="hidden md:table-cell">{d.device_id ? (names.get(d.device_id) ?? "—") : "—"}</TableCell>
              )}
              <TableCell>
                <DeliveryStatusBadge status={d.status} />
              </TableCell>
              <TableCell className="hidden sm:table-cell tabular-nums">{d.attempts}</TableCell>
              <TableCell className="hidden sm:table-cell tabular-nums">
                {d.last_status_code ? `HTTP ${d.last_status_code}` : "—"}
                {d.latency_ms !== null && <span className="text-muted-foreground"> · {d.latency_ms} ms</span>}
              </TableCell>
              {!compact && (
                <TableCell className="hidden max-w-64 truncate lg:table-cell" title={d.last_error ?? undefined}>
                  {d.last_error ?? "—"}
                </TableCell>
              )}
              <TableCell className="text-right">
                <RedeliverButton delivery={d} onDone={onRedelivered} />
              </TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
    </div>
  );
}

const all = "all";

/** DeliveryLog is the webhook delivery log with its filters, refreshed every 5 s, paged by "Load more". */
export function DeliveryLog() {
  const params = useSearchParams();
  const [deviceID, setDeviceID] = useState(params.get("device_id") ?? all);
  const [type, setType] = useState(params.get("type") ?? all);
  const [status, setStatus] = useState(all);
  const filter = useMemo(
    () => ({
      device_id: deviceID === all ? undefined : deviceID,
      type: type === all ? undefined : type,
      status: status === all ? undefined : (status as DeliveryStatus),
    }),
    [deviceID, type, status],
  );
  const key = `deliveries:${deviceID}:${type}:${status}`;
  const first = useResource(key, () => api.deliveries(filter), 5000);
  const devices = useResource("devices", () => api.devices(), 30000);
  // Older pages loaded with "Load more", kept until the filters change.
  const [older, setOlder] = useState<Delivery[]>([]);
  const [next, setNext] = useState<string | null>(null);
  useEffect(() => {
    setOlder([]);
    setNext(null);
  }, [key]);
  const cursor = older.length > 0 ? next : (first.data?.next_before ?? null);

  const loadMore = useCallback(async () => {
    if (!cursor) return;
    try {
      const res = await api.deliveries({ ...filter, before: cursor });
      setOlder((o) => [...o, ...res.deliveries]);
      setNext(res.next_before);
    } catch (e) {
      toast.error(`Could not load more: ${errorMessage(e)}`);
    }
  }, [cursor, filter]);

  const firstPage = first.data?.deliveries ?? [];
  const seen = new Set(firstPage.map((d) => d.id));
  const rows = [...firstPage, ...older.filter((d) => !seen.has(d.id))];

  return (
    <Card id="deliveries">
      <CardHeader>
        <CardTitle>Delivery log</CardTitle>
        <CardDescription>Every webhook event and its delivery attempts, newest first.</CardDescription>
      </CardHeader>
      <CardContent className="grid gap-4">
        <div className="flex flex-wrap gap-2" role="group" aria-label="Filters">
          <Select value={deviceID} onValueChange={setDeviceID}>
            <SelectTrigger className="w-48" aria-label="Device" data-testid="filter-device">
              <SelectValue />
            </SelectTrigger>
            <SelectContent>
              <SelectItem value={all}>All devices</SelectItem>
              {devices.data?.map((d) => (
                <SelectItem key={d.id} value={d.id}>
                  {d.name}
                </SelectItem>
              ))}
              {deviceID !== all && !devices.data?.some((d) => d.id === deviceID) && (
                <SelectItem value={deviceID}>This device</SelectItem>
              )}
            </SelectContent>
          </Select>
          <Select value={type} onValueChange={setType}>
            <SelectTrigger className="w-56" aria-label="Event type" data-testid="filter-type">
              <SelectValue />
            </SelectTrigger>
            <SelectContent>
              <SelectItem value={all}>All events</SelectItem>
              {eventTypes.map((t) => (
                <SelectItem key={t} value={t}>
                  {t}
                </SelectItem>
              ))}
            </SelectContent>
          </Select>
          <Select value={status} onValueChange={setStatus}>
            <SelectTrigger className="w-40" aria-label="Status" data-testid="filter-status">
              <SelectValue />
            </SelectTrigger>
            <SelectContent>
              <SelectItem value={all}>Any status</SelectItem>
              {(["delivered", "pending", "failed", "skipped"] as const satisfies readonly DeliveryStatus[]).map((s) => (
                <SelectItem key={s} value={s}>
                  {s}
                </SelectItem>
              ))}
            </SelectContent>
          </Select>
        </div>
        {first.error !== undefined && !first.data ? (
          <LoadError error={first.error} retry={first.reload} what="the delivery log" />
        ) : first.loading ? (
          <TableSkeleton columns={6} />
        ) : (
          <>
            <DeliveryRows
              deliveries={rows}
              devices={devices.data}
              empty={deviceID === all && type === all && status === all ? "No webhook events yet" : "No events match these filters"}
              onRedelivered={() => void first.reload()}
            />
            {cursor && (
              <div>
                <Button variant="outline" onClick={loadMore} data-testid="deliveries-more">
                  Load more
                </Button>
              </div>
            )}
          </>
        )}
      </CardContent>
    </Card>
  );
}
