import type { Metadata } from "next";
import { Suspense } from "react";

import { DeviceDetail } from "@/features/devices/device-detail";

export const metadata: Metadata = { title: "Device" };

export default function DevicePage() {
  return (
    <Suspense>
      <DeviceDetail />
    </Suspense>
  );
}
