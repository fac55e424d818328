"use client";

import { AppShell } from "@/components/app-shell";
import { ShellSkeleton } from "@/components/shell-skeleton";
import { SessionProvider } from "@/lib/session";

export default function DashboardLayout({ children }: { children: React.ReactNode }) {
  return (
    <SessionProvider fallback={(error, retry) => <ShellSkeleton error={error} retry={retry} />}>
      <AppShell>{children}</AppShell>
    </SessionProvider>
  );
}
