import type { Metadata } from "next";
import { Suspense } from "react";

import { ConnectionDetail } from "@/features/connections/connection-detail";

export const metadata: Metadata = { title: "Connection" };

export default function ConnectionPage() {
  return (
    <Suspense>
      <ConnectionDetail />
    </Suspense>
  );
}
