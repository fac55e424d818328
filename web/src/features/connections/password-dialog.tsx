"use client";

import { Download, TriangleAlert } from "lucide-react";

import { CopyButton } from "@/components/copy-button";
import { Button } from "@/components/ui/button";
import {
  Dialog,
  DialogContent,
  DialogDescription,
  DialogFooter,
  DialogHeader,
  DialogTitle,
} from "@/components/ui/dialog";
import type { ConnectionWithPassword } from "@/lib/api";
import { downloadText } from "@/lib/download";

/**
 * PasswordDialog shows a connection's new password once, with its username, copy buttons and the
 * OpenVPN profile with the credentials inline. The password exists only in the caller's state:
 * once the caller drops it (closing, navigating away) only "Regenerate password" shows one again.
 */
export function PasswordDialog({
  shown,
  onClose,
}: {
  shown: ConnectionWithPassword | null;
  onClose: () => void;
}) {
  const c = shown?.connection;
  return (
    <Dialog open={shown !== null} onOpenChange={(o) => !o && onClose()}>
      <DialogContent onInteractOutside={(e) => e.preventDefault()} data-testid="password-dialog">
        {shown && c && (
          <>
            <DialogHeader>
              <DialogTitle>Save the credentials of {c.name}</DialogTitle>
              <DialogDescription>
                The password is shown only now. cellgate keeps only a hash of it and cannot show it again.
              </DialogDescription>
            </DialogHeader>
            <dl className="grid gap-3">
              <div className="grid gap-1">
                <dt className="text-sm font-medium">Username</dt>
                <dd className="flex items-center gap-2">
                  <code className="bg-muted flex-1 rounded-md px-3 py-2 font-mono text-sm break-all" data-testid="password-username">
                    {c.username}
                  </code>
                  <CopyButton value={c.username} size="icon" label="Copy username" />
                </dd>
              </div>
              <div className="grid gap-1">
                <dt className="text-sm font-medium">Password</dt>
                <dd className="flex items-center gap-2">
                  <code className="bg-muted flex-1 rounded-md px-3 py-2 font-mono text-sm break-all" data-testid="password-value">
                    {shown.password}
                  </code>
                  <CopyButton value={shown.password} testId="password-copy" />
                </dd>
              </div>
            </dl>
            {c.protocol === "openvpn" &&
              (shown.ovpn ? (
                <Button
                  variant="outline"
                  onClick={() => downloadText(`${c.username}.ovpn`, shown.ovpn!)}
                  data-testid="download-ovpn"
                >
                  <Download />
                  Download .ovpn
                </Button>
              ) : (
                <p className="text-muted-foreground text-sm" data-testid="no-ovpn">
                  This server has no OpenVPN server set up (CELLGATE_OPENVPN_DIR), so there is no profile to download.
                </p>
              ))}
            <p className="flex items-start gap-2 text-sm text-amber-700">
              <TriangleAlert className="mt-0.5 size-4 shrink-0" aria-hidden />
              Copy the password or download the profile before you close this dialog.
            </p>
            <DialogFooter>
              <Button onClick={onClose} data-testid="password-done">
                I have saved it
              </Button>
            </DialogFooter>
          </>
        )}
      </DialogContent>
    </Dialog>
  );
}
