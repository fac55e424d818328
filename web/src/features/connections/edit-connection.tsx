"use client";

import { useState } from "react";
import { toast } from "sonner";

import { Field, fieldProps } from "@/components/field";
import { Button } from "@/components/ui/button";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { Switch } from "@/components/ui/switch";
import { api, errorMessage, type Connection } from "@/lib/api";
import { splitLimit } from "@/lib/format";
import {
  apiFieldError,
  editConnectionSchema,
  toBandwidthLimit,
  zodErrors,
  type EditConnectionForm,
  type FieldErrors,
} from "@/lib/schemas";
import { LimitInput } from "./limit-input";

function initial(c: Connection): EditConnectionForm {
  const l = c.bandwidth_limit > 0 ? splitLimit(c.bandwidth_limit) : { value: "1", unit: "GB" as const };
  return { name: c.name, enabled: c.enabled, unlimited: c.bandwidth_limit <= 0, limitValue: l.value, limitUnit: l.unit };
}

/** EditConnection edits a connection's name, bandwidth limit and enabled switch. */
export function EditConnection({ connection: c, onSaved }: { connection: Connection; onSaved: (c: Connection) => void }) {
  const [form, setForm] = useState<EditConnectionForm>(() => initial(c));
  const [errors, setErrors] = useState<FieldErrors>({});
  const [busy, setBusy] = useState(false);

  async function submit(e: React.FormEvent) {
    e.preventDefault();
    const parsed = editConnectionSchema.safeParse(form);
    if (!parsed.success) {
      setErrors(zodErrors(parsed.error));
      return;
    }
    setErrors({});
    setBusy(true);
    try {
      const res = await api.updateConnection(c.id, {
        name: parsed.data.name,
        enabled: parsed.data.enabled,
        bandwidth_limit: toBandwidthLimit(parsed.data),
      });
      onSaved(res.connection);
      setForm(initial(res.connection));
      toast.success("Connection saved.");
    } catch (err) {
      const fe = apiFieldError(err, ["name", "bandwidth_limit", "enabled"]);
      if (fe) setErrors(fe);
      else toast.error(`Could not save: ${errorMessage(err)}`);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} noValidate className="grid gap-5" data-testid="edit-connection-form">
      <Field id="edit-name" label="Name" error={errors.name}>
        <Input
          {...fieldProps("edit-name", errors.name)}
          value={form.name}
          onChange={(e) => setForm({ ...form, name: e.target.value })}
          data-testid="edit-name"
        />
      </Field>
      <LimitInput value={form} onChange={(l) => setForm({ ...form, ...l })} error={errors.bandwidth_limit} />
      <div className="flex items-center gap-2">
        <Switch
          id="enabled"
          checked={form.enabled}
          onCheckedChange={(v) => setForm({ ...form, enabled: v })}
          data-testid="edit-enabled"
        />
        <Label htmlFor="enabled">Enabled</Label>
        <span className="text-muted-foreground text-sm">
          {form.enabled ? "" : "Disabled: it cannot log in, and its sessions are disconnected."}
        </span>
      </div>
      <div>
        <Button type="submit" disabled={busy} data-testid="edit-save">
          {busy ? "Saving…" : "Save"}
        </Button>
      </div>
    </form>
  );
}
