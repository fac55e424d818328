"use client";

import { useState } from "react";
import { Plus, TriangleAlert } from "lucide-react";
import { toast } from "sonner";

import { CopyButton } from "@/components/copy-button";
import { Field, fieldProps } from "@/components/field";
import { Button } from "@/components/ui/button";
import {
  Dialog,
  DialogContent,
  DialogDescription,
  DialogFooter,
  DialogHeader,
  DialogTitle,
  DialogTrigger,
} from "@/components/ui/dialog";
import { Input } from "@/components/ui/input";
import { api, errorMessage, type Device } from "@/lib/api";
import { apiFieldError, deviceSchema, zodErrors, type FieldErrors } from "@/lib/schemas";

/** agentCommand is the command line that enrolls a device with token against this dashboard's API. */
export function agentCommand(token: string): string {
  return `cellgate agent --api ${window.location.origin} --enroll ${token}`;
}

/**
 * AddDeviceDialog creates a device and shows its enrollment token once, with the agent's command
 * line. The token lives only in this dialog's state: closing it forgets the token.
 */
export function AddDeviceDialog({ onCreated }: { onCreated: (d: Device) => void }) {
  const [open, setOpen] = useState(false);
  const [name, setName] = useState("");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<{ device: Device; token: string } | null>(null);

  function reset(o: boolean) {
    setOpen(o);
    if (!o) {
      setName("");
      setErrors({});
      setCreated(null);
    }
  }

  async function submit(e: React.FormEvent) {
    e.preventDefault();
    const parsed = deviceSchema.safeParse({ name });
    if (!parsed.success) {
      setErrors(zodErrors(parsed.error));
      return;
    }
    setErrors({});
    setBusy(true);
    try {
      const res = await api.createDevice(parsed.data.name);
      setCreated({ device: res.device, token: res.enrollment_token });
      onCreated(res.device);
    } catch (err) {
      const fe = apiFieldError(err, ["name"]);
      if (fe) setErrors(fe);
      else toast.error(`Could not add the device: ${errorMessage(err)}`);
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog open={open} onOpenChange={reset}>
      <DialogTrigger asChild>
        <Button data-testid="add-device">
          <Plus />
          Add device
        </Button>
      </DialogTrigger>
      <DialogContent data-testid="add-device-dialog">
        {created ? (
          <>
            <DialogHeader>
              <DialogTitle>Enroll {created.device.name}</DialogTitle>
              <DialogDescription>
                Run the agent on the phone with this enrollment token. It works once, and is shown only now.
              </DialogDescription>
            </DialogHeader>
            <div className="grid gap-4">
              <div className="grid gap-2">
                <span className="text-sm font-medium">Enrollment token</span>
                <div className="flex items-center gap-2">
                  <code
                    className="bg-muted flex-1 rounded-md px-3 py-2 font-mono text-sm break-all"
                    data-testid="enrollment-token"
                  >
                    {created.token}
                  </code>
                  <CopyButton value={created.token} testId="copy-enrollment-token" />
                </div>
              </div>
              <div className="grid gap-2">
                <span className="text-sm font-medium">Agent command</span>
                <div className="flex items-center gap-2">
                  <code
                    className="bg-muted flex-1 rounded-md px-3 py-2 font-mono text-xs break-all"
                    data-testid="agent-command"
                  >
                    {agentCommand(created.token)}
                  </code>
                  <CopyButton value={agentCommand(created.token)} testId="copy-agent-command" />
                </div>
              </div>
              <p className="flex items-start gap-2 text-sm text-amber-700">
                <TriangleAlert className="mt-0.5 size-4 shrink-0" aria-hidden />
                Copy it now: after you close this dialog the token cannot be shown again.
              </p>
            </div>
            <DialogFooter>
              <Button onClick={() => reset(false)} data-testid="enrollment-done">
                Done
              </Button>
            </DialogFooter>
          </>
        ) : (
          <form onSubmit={submit} noValidate className="grid gap-4">
            <DialogHeader>
              <DialogTitle>Add device</DialogTitle>
              <DialogDescription>Name the phone; then enroll it with the token shown next.</DialogDescription>
            </DialogHeader>
            <Field id="device-name" label="Name" error={errors.name} hint="For example the phone's SIM or location.">
              <Input
                {...fieldProps("device-name", errors.name, true)}
                value={name}
                onChange={(e) => setName(e.target.value)}
                autoFocus
                data-testid="device-name"
              />
            </Field>
            <DialogFooter>
              <Button type="submit" disabled={busy} data-testid="device-create">
                {busy ? "Adding…" : "Add device"}
              </Button>
            </DialogFooter>
          </form>
        )}
      </DialogContent>
    </Dialog>
  );
}
