import { badgeTone } from "@/components/tone";
import { Badge } from "@/components/ui/badge";
import type { Device, DeviceDetail } from "@/lib/api";
import { formatAgo, formatDuration, formatTime, since } from "@/lib/format";

/** StatusBadge shows a device's status: online, offline, or unknown (never seen). */
export function StatusBadge({ status }: { status: Device["status"] }) {
  switch (status) {
    case "online":
      return (
        <Badge className={badgeTone.success} data-testid="status-badge" data-status="online">
          <span className="size-1.5 rounded-full bg-green-600" aria-hidden />
          Online
        </Badge>
      );
    case "offline":
      return (
        <Badge variant="destructive" data-testid="status-badge" data-status="offline">
          <span className="size-1.5 rounded-full bg-white" aria-hidden />
          Offline
        </Badge>
      );
    default:
      return (
        <Badge variant="secondary" data-testid="status-badge" data-status="unknown">
          Unknown
        </Badge>
      );
  }
}

/** StatusSince says since when a device has its status, e.g. "for 3 min (since Jan 2, 10:04)". */
export function StatusSince({ device, now }: { device: Device; now: number }) {
  const ms = since(device.status_changed_at, now);
  if (ms === null) return <span className="text-muted-foreground text-xs">no status change yet</span>;
  return (
    <span className="text-muted-foreground text-xs" title={formatTime(device.status_changed_at)}>
      for {formatDuration(ms)}
    </span>
  );
}

/** LastHeartbeat is "12 s ago", refreshed by the caller's clock, or "never". */
export function LastHeartbeat({ at, now }: { at: string | null; now: number }) {
  const ms = since(at, now);
  if (ms === null) return <span className="text-muted-foreground">never</span>;
  return (
    <time dateTime={at ?? undefined} title={formatTime(at)} data-testid="last-heartbeat">
      {formatAgo(ms)}
    </time>
  );
}

/** A device from a list (tunnel_live unknown) or from GET /devices/{id}. */
type TunnelDevice = Device & Partial<Pick<DeviceDetail, "tunnel_live">>;

/**
 * tunnelState describes the device's tunnel as far as the API knows it: enrolled, its Noise key
 * registered, and (when the API asks the relay) whether its session is up.
 */
export function tunnelState(d: TunnelDevice): { label: string; detail?: string; ready: boolean } {
  const detail = d.tunnel_ip ?? undefined;
  if (!d.enrolled_at) return { label: "Not enrolled", ready: false };
  if (!d.has_tunnel_key) return { label: "No tunnel key", detail, ready: false };
  if (d.tunnel_live === true) return { label: "Session up", detail, ready: true };
  if (d.tunnel_live === false) return { label: "No session", detail, ready: false };
  return { label: "Key registered", detail, ready: true };
}

/** TunnelState shows tunnelState as a badge and the tunnel address. */
export function TunnelState({ device }: { device: TunnelDevice }) {
  const t = tunnelState(device);
  return (
    <span className="inline-flex items-center gap-2">
      <Badge variant={t.ready ? "outline" : "secondary"}>{t.label}</Badge>
      {t.detail && <span className="text-muted-foreground font-mono text-xs">{t.detail}</span>}
    </span>
  );
}

/** Battery shows a battery level and whether it charges. */
export function Battery({ device }: { device: Device }) {
  const { battery, charging } = device.telemetry;
  if (battery === null || battery === undefined) return <span className="text-muted-foreground">—</span>;
  const low = battery < 20;
  return (
    <span className={low ? "text-destructive font-medium" : undefined}>
      {battery} %{charging ? " ⚡" : ""}
      {charging && <span className="sr-only"> (charging)</span>}
    </span>
  );
}
