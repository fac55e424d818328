import type { Metadata } from "next";

import { ConnectionList } from "@/features/connections/connection-list";

export const metadata: Metadata = { title: "Connections" };

export default function ConnectionsPage() {
  return <ConnectionList />;
}
