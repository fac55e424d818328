"use client";

import { useState } from "react";
import Link from "next/link";
import { usePathname } from "next/navigation";
import { KeyRound, LogOut, Menu, Network, Settings, Smartphone } from "lucide-react";

import { Button } from "@/components/ui/button";
import { Dialog, DialogContent, DialogDescription, DialogTitle } from "@/components/ui/dialog";
import { useSession } from "@/lib/session";
import { cn } from "@/lib/utils";

const nav = [
  { href: "/devices/", label: "Devices", icon: Smartphone, testId: "nav-devices" },
  { href: "/connections/", label: "Connections", icon: Network, testId: "nav-connections" },
  { href: "/settings/", label: "Settings", icon: Settings, testId: "nav-settings" },
  { href: "/password-migration/", label: "Password migration", icon: KeyRound, testId: "nav-password-migration" },
];

function NavLinks({ onNavigate }: { onNavigate?: () => void }) {
  const pathname = usePathname();
  return (
    <ul className="flex flex-col gap-1">
      {nav.map(({ href, label, icon: Icon, testId }) => {
        const active = pathname === href || pathname.startsWith(href);
        return (
          <li key={href}>
            <Link
              href={href}
              onClick={onNavigate}
              data-testid={testId}
              aria-current={active ? "page" : undefined}
              className={cn(
                "flex items-center gap-2 rounded-md px-3 py-2 text-sm font-medium outline-none transition-colors",
                "hover:bg-sidebar-accent focus-visible:ring-ring/50 focus-visible:ring-[3px]",
                active ? "bg-sidebar-accent text-sidebar-accent-foreground" : "text-muted-foreground",
              )}
            >
              <Icon className="size-4" aria-hidden />
              {label}
            </Link>
          </li>
        );
      })}
    </ul>
  );
}

function Brand() {
  return (
    <Link href="/devices/" className="flex items-center gap-2 font-semibold tracking-tight">
      <span className="bg-primary text-primary-foreground grid size-7 place-items-center rounded-md text-xs">cg</span>
      cellgate
    </Link>
  );
}

/** AppShell is the dashboard's frame: navigation (a sidebar, or a menu at phone width), the operator and logout. */
export function AppShell({ children }: { children: React.ReactNode }) {
  const { operator, logout } = useSession();
  const [menuOpen, setMenuOpen] = useState(false);
  return (
    <div className="min-h-dvh md:grid md:grid-cols-[15rem_1fr]">
      <a
        href="#main"
        className="focus:bg-background sr-only z-50 rounded-md p-2 focus:not-sr-only focus:absolute focus:top-2 focus:left-2"
      >
        Skip to content
      </a>
      <aside className="bg-sidebar hidden border-r md:flex md:flex-col md:gap-6 md:p-4">
        <Brand />
        <nav aria-label="Main">
          <NavLinks />
        </nav>
      </aside>
      <div className="flex min-w-0 flex-col">
        <header className="flex h-14 items-center gap-3 border-b px-4">
          <Button
            variant="ghost"
            size="icon"
            className="md:hidden"
            aria-label="Open menu"
            data-testid="menu-button"
            onClick={() => setMenuOpen(true)}
          >
            <Menu />
          </Button>
          <div className="md:hidden">
            <Brand />
          </div>
          <div className="ml-auto flex items-center gap-3">
            <span className="text-muted-foreground hidden text-sm sm:inline" data-testid="operator-email">
              {operator.email}
            </span>
            <Button variant="outline" size="sm" onClick={() => void logout()} data-testid="logout">
              <LogOut />
              Log out
            </Button>
          </div>
        </header>
        <main id="main" className="mx-auto w-full max-w-7xl flex-1 p-4 md:p-6">
          {children}
        </main>
      </div>
      <Dialog open={menuOpen} onOpenChange={setMenuOpen}>
        <DialogContent className="top-0 left-0 h-dvh max-h-dvh translate-x-0 translate-y-0 rounded-none sm:max-w-xs">
          <DialogTitle>Menu</DialogTitle>
          <DialogDescription className="sr-only">Navigate the dashboard</DialogDescription>
          <nav aria-label="Main">
            <NavLinks onNavigate={() => setMenuOpen(false)} />
          </nav>
          <p className="text-muted-foreground mt-auto text-sm">{operator.email}</p>
        </DialogContent>
      </Dialog>
    </div>
  );
}
