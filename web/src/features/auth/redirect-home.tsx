"use client";

import { useEffect } from "react";
import Link from "next/link";
import { useRouter } from "next/navigation";

/** RedirectHome sends / to the devices page (a static export has no server redirects). */
export function RedirectHome() {
  const router = useRouter();
  useEffect(() => router.replace("/devices/"), [router]);
  return (
    <main className="grid min-h-dvh place-items-center p-6 text-sm">
      <Link href="/devices/" className="underline">
        Open the dashboard
      </Link>
    </main>
  );
}
