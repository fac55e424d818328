"use client";

import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { Select, SelectContent, SelectItem, SelectTrigger, SelectValue } from "@/components/ui/select";
import { Switch } from "@/components/ui/switch";
import { limitUnits, type LimitUnit } from "@/lib/format";

/** The bandwidth limit as a form holds it. */
export interface LimitValue {
  unlimited: boolean;
  limitValue: string;
  limitUnit: LimitUnit;
}

/** LimitInput edits a bandwidth limit: a number with MB/GB/TB, or unlimited. */
export function LimitInput({
  value,
  onChange,
  error,
}: {
  value: LimitValue;
  onChange: (v: LimitValue) => void;
  error?: string;
}) {
  const id = "bandwidth_limit";
  return (
    <fieldset className="grid gap-2">
      <legend className="mb-2 text-sm font-medium">Bandwidth limit</legend>
      <div className="flex flex-wrap items-center gap-3">
        <Input
          id={id}
          type="number"
          inputMode="decimal"
          min={0}
          step="any"
          className="w-32"
          aria-label="Limit"
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? `${id}-error` : undefined}
          disabled={value.unlimited}
          value={value.limitValue}
          onChange={(e) => onChange({ ...value, limitValue: e.target.value })}
          data-testid="limit-value"
        />
        <Select
          value={value.limitUnit}
          onValueChange={(u) => onChange({ ...value, limitUnit: u as LimitUnit })}
          disabled={value.unlimited}
        >
          <SelectTrigger className="w-24" aria-label="Unit" data-testid="limit-unit">
            <SelectValue />
          </SelectTrigger>
          <SelectContent>
            {Object.keys(limitUnits).map((u) => (
              <SelectItem key={u} value={u}>
                {u}
              </SelectItem>
            ))}
          </SelectContent>
        </Select>
        <div className="flex items-center gap-2">
          <Switch
            id="unlimited"
            checked={value.unlimited}
            onCheckedChange={(c) => onChange({ ...value, unlimited: c })}
            data-testid="limit-unlimited"
          />
          <Label htmlFor="unlimited">Unlimited</Label>
        </div>
      </div>
      {error ? (
        <p id={`${id}-error`} className="text-destructive text-sm" role="alert" data-testid={`${id}-error`}>
          {error}
        </p>
      ) : (
        <p className="text-muted-foreground text-sm">
          Traffic in both directions counts. At the limit the connection is cut off until you raise the limit or reset
          its usage. 1 GB is 1,000 MB.
        </p>
      )}
    </fieldset>
  );
}
