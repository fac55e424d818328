"use client";

import { useState } from "react";
import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { Smartphone } from "lucide-react";
import { toast } from "sonner";

import { EmptyState } from "@/components/empty-state";
import { Field, fieldProps } from "@/components/field";
import { LoadError } from "@/components/load-error";
import { PageHeader } from "@/components/page-header";
import { Button } from "@/components/ui/button";
import { Card, CardContent } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Select, SelectContent, SelectItem, SelectTrigger, SelectValue } from "@/components/ui/select";
import { Skeleton } from "@/components/ui/skeleton";
import { api, errorMessage, type ConnectionWithPassword, type Protocol } from "@/lib/api";
import {
  apiFieldError,
  createConnectionSchema,
  toBandwidthLimit,
  zodErrors,
  type CreateConnectionForm,
  type FieldErrors,
} from "@/lib/schemas";
import { useResource } from "@/lib/use-resource";
import { connectionHref } from "./links";
import { LimitInput } from "./limit-input";
import { PasswordDialog } from "./password-dialog";

const protocols: { value: Protocol; label: string }[] = [
  { value: "openvpn", label: "OpenVPN" },
  { value: "http", label: "HTTP proxy" },
  { value: "socks5", label: "SOCKS5" },
];

const apiFields = ["name", "device_id", "protocol", "username", "password", "bandwidth_limit"] as const;

/**
 * NewConnection is the create form. After the API accepts it, the password dialog shows the
 * password once; closing it opens the connection's page, where no password is shown again.
 */
export function NewConnection() {
  const router = useRouter();
  const params = useSearchParams();
  const devices = useResource("devices", () => api.devices());
  const [form, setForm] = useState<CreateConnectionForm>({
    name: "",
    device_id: params.get("device_id") ?? "",
    protocol: "openvpn",
    username: "",
    password: "",
    unlimited: false,
    limitValue: "1",
    limitUnit: "GB",
  });
  const [errors, setErrors] = useState<FieldErrors>({});
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<ConnectionWithPassword | null>(null);

  const set = <K extends keyof CreateConnectionForm>(k: K, v: CreateConnectionForm[K]) =>
    setForm((f) => ({ ...f, [k]: v }));

  async function submit(e: React.FormEvent) {
    e.preventDefault();
    const parsed = createConnectionSchema.safeParse(form);
    if (!parsed.success) {
      setErrors(zodErrors(parsed.error));
      return;
    }
    setErrors({});
    setBusy(true);
    const v = parsed.data;
    try {
      const res = await api.createConnection({
        device_id: v.device_id,
        name: v.name,
        protocol: v.protocol,
        username: v.username || undefined,
        password: v.password || undefined,
        bandwidth_limit: toBandwidthLimit(v),
      });
      setCreated(res);
    } catch (err) {
      const fe = apiFieldError(err, apiFields);
      if (fe) setErrors(fe);
      else toast.error(`Could not create the connection: ${errorMessage(err)}`);
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      <PageHeader title="New connection" description="A proxy connection whose traffic leaves through one device." />
      {devices.error !== undefined && !devices.data ? (
        <LoadError error={devices.error} retry={devices.reload} what="the devices" />
      ) : devices.loading ? (
        <Skeleton className="h-96 w-full max-w-2xl" />
      ) : devices.data?.length === 0 ? (
        <EmptyState
          icon={Smartphone}
          title="Add a device first"
          action={
            <Button asChild>
              <Link href="/devices/">Go to devices</Link>
            </Button>
          }
        >
          A connection sends its traffic out through a device&apos;s mobile IP.
        </EmptyState>
      ) : (
        <Card className="max-w-2xl">
          <CardContent>
            <form onSubmit={submit} noValidate className="grid gap-5" data-testid="connection-form">
              <Field id="name" label="Name" error={errors.name} hint="Who or what it is for, e.g. the customer.">
                <Input
                  {...fieldProps("name", errors.name, true)}
                  value={form.name}
                  onChange={(e) => set("name", e.target.value)}
                  data-testid="connection-name"
                />
              </Field>
              <Field id="device_id" label="Device" error={errors.device_id}>
                <Select value={form.device_id} onValueChange={(v) => set("device_id", v)}>
                  <SelectTrigger
                    {...fieldProps("device_id", errors.device_id)}
                    className="w-full"
                    data-testid="connection-device"
                  >
                    <SelectValue placeholder="Choose a device" />
                  </SelectTrigger>
                  <SelectContent>
                    {devices.data?.map((d) => (
                      <SelectItem key={d.id} value={d.id}>
                        {d.name}
                      </SelectItem>
                    ))}
                  </SelectContent>
                </Select>
              </Field>
              <Field id="protocol" label="Protocol" error={errors.protocol}>
                <Select value={form.protocol} onValueChange={(v) => set("protocol", v as Protocol)}>
                  <SelectTrigger {...fieldProps("protocol", errors.protocol)} className="w-full" data-testid="connection-protocol">
                    <SelectValue />
                  </SelectTrigger>
                  <SelectContent>
                    {protocols.map((p) => (
                      <SelectItem key={p.value} value={p.value}>
                        {p.label}
                      </SelectItem>
                    ))}
                  </SelectContent>
                </Select>
              </Field>
              <LimitInput value={form} onChange={(l) => setForm((f) => ({ ...f, ...l }))} error={errors.bandwidth_limit} />
              <div className="grid gap-5 sm:grid-cols-2">
                <Field id="username" label="Username (optional)" error={errors.username} hint="Empty: cellgate makes one.">
                  <Input
                    {...fieldProps("username", errors.username, true)}
                    autoComplete="off"
                    value={form.username}
                    onChange={(e) => set("username", e.target.value)}
                    data-testid="connection-username"
                  />
                </Field>
                <Field id="password" label="Password (optional)" error={errors.password} hint="Empty: cellgate makes a strong one.">
                  <Input
                    {...fieldProps("password", errors.password, true)}
                    type="password"
                    autoComplete="new-password"
                    value={form.password}
                    onChange={(e) => set("password", e.target.value)}
                    data-testid="connection-password"
                  />
                </Field>
              </div>
              <div className="flex gap-2">
                <Button type="submit" disabled={busy} data-testid="connection-submit">
                  {busy ? "Creating…" : "Create connection"}
                </Button>
                <Button type="button" variant="outline" asChild>
                  <Link href="/connections/">Cancel</Link>
                </Button>
              </div>
            </form>
          </CardContent>
        </Card>
      )}
      <PasswordDialog
        shown={created}
        onClose={() => {
          const id = created?.connection.id;
          setCreated(null);
          if (id) router.push(connectionHref(id));
        }}
      />
    </>
  );
}
