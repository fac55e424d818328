import type { Metadata } from "next";

import { PasswordMigrationView } from "@/features/migration/password-migration";

export const metadata: Metadata = { title: "Password migration" };

export default function PasswordMigrationPage() {
  return <PasswordMigrationView />;
}
