"use client";

import { useState } from "react";
import { Check, Copy } from "lucide-react";
import { toast } from "sonner";

import { Button } from "@/components/ui/button";

/** copyText puts text on the clipboard, falling back to a hidden textarea where the Clipboard API is missing (plain http). */
export async function copyText(text: string): Promise<void> {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const ta = document.createElement("textarea");
  ta.value = text;
  ta.setAttribute("readonly", "");
  ta.style.position = "fixed";
  ta.style.opacity = "0";
  document.body.appendChild(ta);
  ta.select();
  try {
    if (!document.execCommand("copy")) throw new Error("copy was refused");
  } finally {
    ta.remove();
  }
}

/** CopyButton copies value and says so for two seconds. */
export function CopyButton({
  value,
  label = "Copy",
  testId,
  size = "sm",
}: {
  value: string;
  label?: string;
  testId?: string;
  size?: "sm" | "icon";
}) {
  const [copied, setCopied] = useState(false);
  return (
    <Button
      type="button"
      variant="outline"
      size={size}
      data-testid={testId}
      aria-label={size === "icon" ? label : undefined}
      onClick={async () => {
        try {
          await copyText(value);
          setCopied(true);
          setTimeout(() => setCopied(false), 2000);
        } catch {
          toast.error("Could not copy: select the text and copy it yourself.");
        }
      }}
    >
      {copied ? <Check /> : <Copy />}
      {size !== "icon" && (copied ? "Copied" : label)}
    </Button>
  );
}
