"use client";

import { useEffect, useState } from "react";
import { Eye, EyeOff, RefreshCw, Send } from "lucide-react";
import { toast } from "sonner";

import { ConfirmButton } from "@/components/confirm-button";
import { CopyButton } from "@/components/copy-button";
import { Field, fieldProps } from "@/components/field";
import { LoadError } from "@/components/load-error";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { Skeleton } from "@/components/ui/skeleton";
import { Switch } from "@/components/ui/switch";
import { api, errorMessage, type WebhookSetting, type WebhookTestResult } from "@/lib/api";
import { apiFieldError, webhookSchema, zodErrors, type FieldErrors } from "@/lib/schemas";
import { useResource } from "@/lib/use-resource";

/** testOK tells whether a test delivery reached the endpoint and got a 2xx. */
export function testOK(r: WebhookTestResult): boolean {
  return !r.error && r.status_code >= 200 && r.status_code < 300;
}

function TestResult({ result }: { result: WebhookTestResult }) {
  const ok = testOK(result);
  return (
    <p
      className={`rounded-md border p-3 text-sm ${ok ? "border-green-600/30 bg-green-600/5" : "border-destructive/30 bg-destructive/5"}`}
      role="status"
      data-testid="webhook-test-result"
      data-ok={ok}
    >
      {ok ? "Delivered" : "Not delivered"}
      {result.status_code > 0 && <>: HTTP {result.status_code}</>}
      {" "}in {result.latency_ms} ms
      {result.error && <span className="block break-words">{result.error}</span>}
    </p>
  );
}

function Secret({ secret, onRotated }: { secret: string; onRotated: (w: WebhookSetting) => void }) {
  const [revealed, setRevealed] = useState(false);
  return (
    <div className="grid gap-2">
      <span className="text-sm font-medium">Signing secret</span>
      <div className="flex flex-wrap items-center gap-2">
        <code className="bg-muted min-w-0 flex-1 rounded-md px-3 py-2 font-mono text-sm break-all" data-testid="webhook-secret">
          {revealed ? secret : `${secret.slice(0, 6)}${"•".repeat(24)}`}
        </code>
        <Button
          type="button"
          variant="outline"
          size="icon"
          aria-label={revealed ? "Hide secret" : "Reveal secret"}
          aria-pressed={revealed}
          onClick={() => setRevealed((r) => !r)}
          data-testid="webhook-secret-reveal"
        >
          {revealed ? <EyeOff /> : <Eye />}
        </Button>
        <CopyButton value={secret} size="icon" label="Copy secret" testId="webhook-secret-copy" />
        <ConfirmButton
          testId="rotate-secret"
          trigger={
            <Button type="button" variant="outline" data-testid="rotate-secret">
              <RefreshCw />
              Rotate
            </Button>
          }
          title="Rotate the signing secret?"
          description="Deliveries are signed with the new secret at once; update your endpoint's verification before the next event."
          confirmLabel="Rotate"
          onConfirm={async () => {
            try {
              onRotated(await api.rotateWebhookSecret());
              setRevealed(true);
              toast.success("Secret rotated.");
            } catch (e) {
              toast.error(`Could not rotate the secret: ${errorMessage(e)}`);
            }
          }}
        />
      </div>
      <p className="text-muted-foreground text-sm">
        Verify each delivery&apos;s webhook-signature header (Standard Webhooks, HMAC-SHA256) with it.
      </p>
    </div>
  );
}

/** WebhookCard edits the operator's webhook endpoint, its secret, and sends test events. */
export function WebhookCard() {
  const hook = useResource("webhook", () => api.webhook());
  const [url, setURL] = useState("");
  const [enabled, setEnabled] = useState(true);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [busy, setBusy] = useState(false);
  const [testing, setTesting] = useState(false);
  const [result, setResult] = useState<WebhookTestResult | null>(null);

  useEffect(() => {
    if (hook.data?.configured) {
      setURL(hook.data.url);
      setEnabled(hook.data.enabled);
    }
  }, [hook.data]);

  async function save(e: React.FormEvent) {
    e.preventDefault();
    const parsed = webhookSchema.safeParse({ url, enabled });
    if (!parsed.success) {
      setErrors(zodErrors(parsed.error));
      return;
    }
    setErrors({});
    setBusy(true);
    try {
      hook.mutate(await api.saveWebhook(parsed.data.url, parsed.data.enabled));
      toast.success("Webhook saved.");
    } catch (err) {
      const fe = apiFieldError(err, ["url", "enabled"]);
      if (fe) setErrors(fe);
      else toast.error(`Could not save the webhook: ${errorMessage(err)}`);
    } finally {
      setBusy(false);
    }
  }

  async function sendTest() {
    setTesting(true);
    setResult(null);
    try {
      setResult(await api.testWebhook());
    } catch (e) {
      toast.error(`Could not send the test: ${errorMessage(e)}`);
    } finally {
      setTesting(false);
    }
  }

  return (
    <Card>
      <CardHeader>
        <CardTitle>Webhook</CardTitle>
        <CardDescription>
          cellgate posts device.offline, device.online and quota events to this URL, retrying for hours.
        </CardDescription>
      </CardHeader>
      <CardContent>
        {hook.error !== undefined && !hook.data ? (
          <LoadError error={hook.error} retry={hook.reload} what="the webhook setting" />
        ) : !hook.data ? (
          <Skeleton className="h-40" />
        ) : (
          <div className="grid gap-6">
            <form onSubmit={save} noValidate className="grid gap-4" data-testid="webhook-form">
              <Field id="webhook-url" label="Endpoint URL" error={errors.url}>
                <Input
                  {...fieldProps("webhook-url", errors.url)}
                  type="url"
                  placeholder="https://example.com/cellgate-webhook"
                  value={url}
                  onChange={(e) => setURL(e.target.value)}
                  data-testid="webhook-url"
                />
              </Field>
              <div className="flex items-center gap-2">
                <Switch id="webhook-enabled" checked={enabled} onCheckedChange={setEnabled} data-testid="webhook-enabled" />
                <Label htmlFor="webhook-enabled">Enabled</Label>
              </div>
              <div className="flex flex-wrap gap-2">
                <Button type="submit" disabled={busy} data-testid="webhook-save">
                  {busy ? "Saving…" : "Save"}
                </Button>
                <Button
                  type="button"
                  variant="outline"
                  disabled={testing || !hook.data.configured}
                  onClick={sendTest}
                  data-testid="webhook-test"
                >
                  <Send />
                  {testing ? "Sending…" : "Send test"}
                </Button>
              </div>
              {!hook.data.configured && (
                <p className="text-muted-foreground text-sm" data-testid="webhook-not-configured">
                  No webhook yet: save a URL to get a signing secret and send a test.
                </p>
              )}
              {result && <TestResult result={result} />}
            </form>
            {hook.data.configured && <Secret secret={hook.data.secret} onRotated={hook.mutate} />}
          </div>
        )}
      </CardContent>
    </Card>
  );
}
