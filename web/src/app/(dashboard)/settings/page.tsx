import type { Metadata } from "next";
import { Suspense } from "react";

import { PageHeader } from "@/components/page-header";
import { DeliveryLog } from "@/features/settings/delivery-log";
import { WebhookCard } from "@/features/settings/webhook-card";

export const metadata: Metadata = { title: "Settings" };

export default function SettingsPage() {
  return (
    <>
      <PageHeader title="Settings" description="Where alerts go, and what happened to them." />
      <div className="grid gap-6">
        <WebhookCard />
        <Suspense>
          <DeliveryLog />
        </Suspense>
      </div>
    </>
  );
}
