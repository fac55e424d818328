"use client";

import Link from "next/link";
import { Network, Plus } from "lucide-react";

import { EmptyState } from "@/components/empty-state";
import { LoadError } from "@/components/load-error";
import { PageHeader } from "@/components/page-header";
import { TableSkeleton } from "@/components/table-skeleton";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { api, type Connection, type ConnectionDetail, type Device } from "@/lib/api";
import { useResource } from "@/lib/use-resource";
import { deviceHref } from "@/features/devices/links";
import { LastReset } from "./last-reset";
import { connectionHref } from "./links";
import { UsageBar } from "./usage-bar";

const protocolLabel: Record<Connection["protocol"], string> = {
  openvpn: "OpenVPN",
  http: "HTTP",
  socks5: "SOCKS5",
};

/** ProtocolBadge names a connection's protocol. */
export function ProtocolBadge({ protocol }: { protocol: Connection["protocol"] }) {
  return <Badge variant="outline">{protocolLabel[protocol] ?? protocol}</Badge>;
}

/** ConnectionTable lists connections with their usage bars; devices names their devices. */
export function ConnectionTable({
  connections,
  devices,
  showDevice = true,
}: {
  connections: ConnectionDetail[];
  devices?: Device[];
  showDevice?: boolean;
}) {
  const names = new Map(devices?.map((d) => [d.id, d.name]));
  return (
    <div className="min-w-0 rounded-xl border">
      <Table data-testid="connections-table">
        <TableHeader>
          <TableRow>
            <TableHead>Name</TableHead>
            <TableHead>Usage</TableHead>
            <TableHead className="hidden sm:table-cell">Protocol</TableHead>
            {showDevice && <TableHead className="hidden md:table-cell">Device</TableHead>}
            <TableHead className="hidden lg:table-cell">Last reset</TableHead>
            <TableHead className="hidden lg:table-cell">State</TableHead>
          </TableRow>
        </TableHeader>
        <TableBody>
          {connections.map((c) => (
            <TableRow key={c.id} data-testid="connection-row" data-connection-id={c.id}>
              <TableCell>
                <Link
                  href={connectionHref(c.id)}
                  className="font-medium underline-offset-4 hover:underline"
                  data-testid="connection-link"
                >
                  {c.name}
                </Link>
                <div className="text-muted-foreground font-mono text-xs">{c.username}</div>
              </TableCell>
              <TableCell className="w-64">
                <UsageBar connection={c} />
              </TableCell>
              <TableCell className="hidden sm:table-cell">
                <ProtocolBadge protocol={c.protocol} />
              </TableCell>
              {showDevice && (
                <TableCell className="hidden md:table-cell">
                  <Link href={deviceHref(c.device_id)} className="underline-offset-4 hover:underline">
                    {names.get(c.device_id) ?? "device"}
                  </Link>
                </TableCell>
              )}
              <TableCell className="hidden lg:table-cell">
                <LastReset connection={c} />
              </TableCell>
              <TableCell className="hidden lg:table-cell">
                {c.enabled ? <Badge variant="outline">Enabled</Badge> : <Badge variant="secondary">Disabled</Badge>}
              </TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
    </div>
  );
}

/** ConnectionList is the connections page: every connection, refreshed every 5 s. */
export function ConnectionList() {
  const conns = useResource("connections", () => api.connections(), 5000);
  const devices = useResource("devices", () => api.devices(), 30000);
  return (
    <>
      <PageHeader title="Connections" description="Proxy connections, their usage and their limits.">
        <Button asChild data-testid="new-connection">
          <Link href="/connections/new/">
            <Plus />
            New connection
          </Link>
        </Button>
      </PageHeader>
      {conns.error !== undefined && !conns.data ? (
        <LoadError error={conns.error} retry={conns.reload} what="the connections" />
      ) : conns.loading ? (
        <TableSkeleton columns={6} />
      ) : conns.data?.length === 0 ? (
        <EmptyState
          icon={Network}
          title="No connections yet"
          testId="connections-empty"
          action={
            <Button asChild>
              <Link href="/connections/new/">New connection</Link>
            </Button>
          }
        >
          A connection is an OpenVPN profile (or HTTP/SOCKS5 credentials) whose traffic leaves through one of your
          devices.
        </EmptyState>
      ) : (
        <ConnectionTable connections={conns.data ?? []} devices={devices.data} />
      )}
    </>
  );
}
