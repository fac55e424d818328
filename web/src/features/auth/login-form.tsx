"use client";

import { useEffect, useState } from "react";
import { useRouter, useSearchParams } from "next/navigation";
import { Info } from "lucide-react";

import { Field, fieldProps } from "@/components/field";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { api, ApiError, errorMessage, setCSRFToken } from "@/lib/api";
import { apiFieldError, loginSchema, zodErrors, type FieldErrors } from "@/lib/schemas";

/** safeNext keeps a return path only when it is a path of this site. */
function safeNext(next: string | null): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/login")) return "/devices/";
  return next;
}

/** LoginForm logs an operator in and returns to the page that sent them here. */
export function LoginForm() {
  const router = useRouter();
  const params = useSearchParams();
  const next = safeNext(params.get("next"));
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  // Someone already logged in goes straight on.
  useEffect(() => {
    let live = true;
    api
      .me({ quiet401: true })
      .then(() => live && router.replace(next))
      .catch(() => {});
    return () => {
      live = false;
    };
  }, [router, next]);

  const notice = params.get("expired")
    ? "Your session has expired. Log in again to continue."
    : params.get("logged_out")
      ? "You are logged out."
      : null;

  async function submit(e: React.FormEvent) {
    e.preventDefault();
    setFormError(null);
    const parsed = loginSchema.safeParse({ email, password });
    if (!parsed.success) {
      setErrors(zodErrors(parsed.error));
      return;
    }
    setErrors({});
    setBusy(true);
    try {
      const res = await api.login(parsed.data.email, parsed.data.password);
      setCSRFToken(res.csrf_token);
      router.replace(next);
    } catch (err) {
      const fe = apiFieldError(err, ["email", "password"]);
      if (fe) setErrors(fe);
      else if (err instanceof ApiError && err.status === 401) setFormError("Wrong email or password.");
      else setFormError(errorMessage(err));
      setBusy(false);
    }
  }

  return (
    <main className="bg-muted/40 grid min-h-dvh place-items-center p-4">
      <Card className="w-full max-w-sm">
        <CardHeader>
          <div className="mb-2 flex items-center gap-2 font-semibold">
            <span className="bg-primary text-primary-foreground grid size-7 place-items-center rounded-md text-xs">cg</span>
            cellgate
          </div>
          <CardTitle className="text-xl">Log in</CardTitle>
          <CardDescription>Operators manage their devices, proxy connections and webhooks here.</CardDescription>
        </CardHeader>
        <CardContent>
          {notice && (
            <p
              className="bg-muted mb-4 flex items-start gap-2 rounded-md p-3 text-sm"
              role="status"
              data-testid="login-notice"
            >
              <Info className="mt-0.5 size-4 shrink-0" aria-hidden />
              {notice}
            </p>
          )}
          <form onSubmit={submit} noValidate className="grid gap-4" data-testid="login-form">
            <Field id="email" label="Email" error={errors.email}>
              <Input
                {...fieldProps("email", errors.email)}
                type="email"
                autoComplete="username"
                autoFocus
                value={email}
                onChange={(e) => setEmail(e.target.value)}
                data-testid="login-email"
              />
            </Field>
            <Field id="password" label="Password" error={errors.password}>
              <Input
                {...fieldProps("password", errors.password)}
                type="password"
                autoComplete="current-password"
                value={password}
                onChange={(e) => setPassword(e.target.value)}
                data-testid="login-password"
              />
            </Field>
            {formError && (
              <p className="text-destructive text-sm" role="alert" data-testid="login-error">
                {formError}
              </p>
            )}
            <Button type="submit" disabled={busy} data-testid="login-submit">
              {busy ? "Logging in…" : "Log in"}
            </Button>
          </form>
        </CardContent>
      </Card>
    </main>
  );
}
