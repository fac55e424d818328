import Link from "next/link";

import { Button } from "@/components/ui/button";

export default function NotFound() {
  return (
    <main className="grid min-h-dvh place-items-center p-6">
      <div className="flex max-w-md flex-col items-center gap-4 text-center" data-testid="not-found">
        <p className="text-muted-foreground text-sm font-medium">404</p>
        <h1 className="text-2xl font-semibold">This page does not exist</h1>
        <p className="text-muted-foreground text-sm">The link may be old, or the address mistyped.</p>
        <Button asChild>
          <Link href="/devices/">Go to devices</Link>
        </Button>
      </div>
    </main>
  );
}
