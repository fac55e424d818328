import type { Metadata } from "next";
import { Suspense } from "react";

import { NewConnection } from "@/features/connections/connection-form";

export const metadata: Metadata = { title: "New connection" };

export default function NewConnectionPage() {
  return (
    <Suspense>
      <NewConnection />
    </Suspense>
  );
}
