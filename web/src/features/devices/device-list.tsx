"use client";

import Link from "next/link";
import { Smartphone } from "lucide-react";

import { EmptyState } from "@/components/empty-state";
import { LoadError } from "@/components/load-error";
import { PageHeader } from "@/components/page-header";
import { TableSkeleton } from "@/components/table-skeleton";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { api } from "@/lib/api";
import { useNow } from "@/lib/use-now";
import { useResource } from "@/lib/use-resource";
import { AddDeviceDialog } from "./add-device-dialog";
import { deviceHref } from "./links";
import { Battery, LastHeartbeat, StatusBadge, StatusSince, TunnelState } from "./status";

/** DeviceList is the devices table, refreshed every 5 s; heartbeat ages tick every second. */
export function DeviceList() {
  const devices = useResource("devices", () => api.devices(), 5000);
  const now = useNow();
  const list = devices.data;

  return (
    <>
      <PageHeader title="Devices" description="Your phones, their status and their last heartbeat.">
        <AddDeviceDialog onCreated={() => void devices.reload()} />
      </PageHeader>
      {devices.error !== undefined && !list ? (
        <LoadError error={devices.error} retry={devices.reload} what="the devices" />
      ) : devices.loading ? (
        <TableSkeleton columns={7} />
      ) : list && list.length === 0 ? (
        <EmptyState icon={Smartphone} title="No devices yet" testId="devices-empty">
          Add a device, then run the cellgate agent on the phone with the enrollment token it shows.
        </EmptyState>
      ) : (
        <div className="min-w-0 rounded-xl border">
          <Table data-testid="devices-table">
            <TableHeader>
              <TableRow>
                <TableHead>Name</TableHead>
                <TableHead>Status</TableHead>
                <TableHead>Last heartbeat</TableHead>
                <TableHead className="hidden sm:table-cell">Battery</TableHead>
                <TableHead className="hidden md:table-cell">Carrier</TableHead>
                <TableHead className="hidden md:table-cell">Network</TableHead>
                <TableHead className="hidden lg:table-cell">Tunnel</TableHead>
              </TableRow>
            </TableHeader>
            <TableBody>
              {list?.map((d) => (
                <TableRow key={d.id} data-testid="device-row" data-device-id={d.id} data-status={d.status}>
                  <TableCell className="font-medium">
                    <Link href={deviceHref(d.id)} className="underline-offset-4 hover:underline" data-testid="device-link">
                      {d.name}
                    </Link>
                  </TableCell>
                  <TableCell>
                    <span className="flex flex-col items-start gap-1">
                      <StatusBadge status={d.status} />
                      <StatusSince device={d} now={now} />
                    </span>
                  </TableCell>
                  <TableCell>
                    <LastHeartbeat at={d.last_heartbeat_at} now={now} />
                  </TableCell>
                  <TableCell className="hidden sm:table-cell">
                    <Battery device={d} />
                  </TableCell>
                  <TableCell className="hidden md:table-cell">{d.telemetry.carrier ?? "—"}</TableCell>
                  <TableCell className="hidden md:table-cell">{d.telemetry.network_type ?? "—"}</TableCell>
                  <TableCell className="hidden lg:table-cell">
                    <TunnelState device={d} />
                  </TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        </div>
      )}
    </>
  );
}
